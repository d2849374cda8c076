"""Reports from gsbench records: tidy table and summary, RD curves, BD-rate, speed tables, paper vs ours,
CompressAI JSON (``python -m gsbench.report --help``; docs/reports.md)."""

from .aggregate import curve_points, load_frame, records_frame, summarize
from .bdrate import bd, bd_table
from .cli import build_report
from .compressai_json import compressai_curves, write_compressai
from .paper import load_experiment, paper_table
from .tables import speed_table

__all__ = [
    "bd",
    "bd_table",
    "build_report",
    "compressai_curves",
    "curve_points",
    "load_experiment",
    "load_frame",
    "paper_table",
    "records_frame",
    "speed_table",
    "summarize",
    "write_compressai",
]
