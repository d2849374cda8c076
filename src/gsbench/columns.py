"""The per-image columns a job shows for its task: one definition for the printed table, ``results.csv``
and the W&B logger, so the three always agree.

A compress run is read by its rate first, so its columns carry bpp, the analytic payload, the file size
and the codec's timings; a represent run has no file, so its columns carry the fit time and render FPS.
The metric columns come from the metric registry (:mod:`gsbench.metrics.registry`), read at each call so
that a metric registered later (a plugin, a test) has its column too. The runner and the loggers both read
this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .metrics.registry import REGISTRY

TASK_COLUMNS: dict[str, tuple[str, ...]] = {
    "represent": ("fit_seconds", "render_fps"),
    "compress": (
        "bpp",
        "bpp_payload",
        "bitstream_bytes",
        "encode_seconds",
        "decode_seconds",
        "decode_fps",
        "render_fps",
    ),
}
# the subset printed at the end of a run (results.csv keeps every column); a terminal is ~140 wide.
# Metrics go where the placeholder is, those whose ``printed`` names the task.
_METRICS = "<metrics>"
PRINTED_LAYOUT: dict[str, tuple[str, ...]] = {
    "represent": ("num_gaussians", _METRICS, "fit_seconds", "render_fps"),
    "compress": (
        "num_gaussians",
        "bpp",
        "bpp_payload",
        "bitstream_bytes",
        _METRICS,
        "encode_seconds",
        "decode_seconds",
        "decode_fps",
    ),
}
# integer-valued columns: printed without decimals
COUNTS = ("num_gaussians", "bitstream_bytes")


def metric_columns() -> tuple[str, ...]:
    """The metrics every task's table has, in table order: the ones a job computes by name.

    Derived metrics (``ms_ssim_db``) are not among them: they follow the task's columns in a table where
    some record has them, as any further value does.
    """
    return REGISTRY.names(derived=False)


def task_columns(task: str) -> tuple[str, ...]:
    """Every per-image column of ``task`` after ``image`` and ``status``, in table order."""
    return ("num_gaussians", *metric_columns(), *TASK_COLUMNS.get(task, TASK_COLUMNS["represent"]))


def printed_columns(task: str) -> tuple[str, ...]:
    """The columns of ``task``'s end-of-job table (the metrics whose ``printed`` names the task)."""
    task = task if task in PRINTED_LAYOUT else "represent"
    metrics = tuple(m.name for m in REGISTRY if not m.is_derived and task in m.printed)
    return tuple(c for col in PRINTED_LAYOUT[task] for c in (metrics if col == _METRICS else (col,)))


def record_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """The flat values of one record that the tables show: every metric, counts, rate and timings.

    ``render_fps`` is None when nothing was rendered (a pixel codec's decoded image is the image itself:
    timing it would time a copy); ``decode_fps`` comes from the record's ``decode`` block.
    """
    render = record.get("render") or {}
    decode = record.get("decode") or {}
    row: dict[str, Any] = {"num_gaussians": record.get("num_gaussians")}
    row.update(record.get("metrics") or {})
    for key in ("bpp", "bpp_payload", "bitstream_bytes", "fit_seconds", "encode_seconds", "decode_seconds"):
        row[key] = record.get(key)
    row["decode_fps"] = decode.get("decode_fps")
    row["render_fps"] = render.get("render_fps")
    return row
