"""The per-image columns a job shows for its task: one definition for the printed table, ``results.csv``
and the W&B logger, so the three always agree.

A compress run is read by its rate first, so its columns carry bpp, the analytic payload, the file size
and the codec's timings; a represent run has no file, so its columns carry the fit time and render FPS.
This module imports nothing from gsbench: the runner and the loggers both read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# metrics every task scores (the record's ``metrics``); kept in this order in every table
METRIC_COLUMNS = ("psnr", "psnr_8bit", "ssim", "ms_ssim", "lpips", "flip")
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
# the subset printed at the end of a run (results.csv keeps every column); a terminal is ~140 wide
PRINTED: dict[str, tuple[str, ...]] = {
    "represent": (
        "num_gaussians",
        "psnr",
        "psnr_8bit",
        "ms_ssim",
        "lpips",
        "flip",
        "fit_seconds",
        "render_fps",
    ),
    "compress": (
        "num_gaussians",
        "bpp",
        "bpp_payload",
        "bitstream_bytes",
        "psnr",
        "psnr_8bit",
        "ms_ssim",
        "lpips",
        "encode_seconds",
        "decode_seconds",
        "decode_fps",
    ),
}
# integer-valued columns: printed without decimals
COUNTS = ("num_gaussians", "bitstream_bytes")


def task_columns(task: str) -> tuple[str, ...]:
    """Every per-image column of ``task`` after ``image`` and ``status``, in table order."""
    return ("num_gaussians", *METRIC_COLUMNS, *TASK_COLUMNS.get(task, TASK_COLUMNS["represent"]))


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
