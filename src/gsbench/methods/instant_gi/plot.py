"""The time-to-quality figure moved to :mod:`gsbench.report.time_quality` (with the report's other
figures); these names stay importable from here."""

from ...report.time_quality import time_to_quality_plot, time_to_quality_series

__all__ = ["time_to_quality_plot", "time_to_quality_series"]
