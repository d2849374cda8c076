"""Markdown formatting, the summary table and the speed table (FPS, fit/encode/decode time, memory)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..metrics import REGISTRY
from .aggregate import ok_rows


def fmt(v: Any, digits: int = 4) -> str:
    """A cell for reading: empty for missing values, integers without decimals, ``digits`` significant
    figures for small floats and one decimal for large ones (FPS, seconds, MiB)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v)}"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:.{max(digits - 1, 1)}f}".rstrip("0").rstrip(".")
    try:  # numpy scalars
        return fmt(v.item(), digits)
    except AttributeError:
        return str(v)


def markdown_table(df: pd.DataFrame, digits: int = 4) -> str:
    """``df`` as a GitHub Markdown table (no index); ``|`` inside cells is escaped."""
    if df.empty:
        return "(no rows)"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(" --- " for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [fmt(v, digits).replace("|", "\\|").replace("\n", " ") for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# the columns of summary.md per task (summary.csv has every one): what a reader of that task looks for;
# the metrics are the registry's ``headline`` ones, between the task's size and its timings
SUMMARY_VIEW_SIZE = {"compress": ("bpp", "bpp_payload"), "represent": ("num_gaussians",)}
SUMMARY_VIEW_TIMES = {
    "compress": ("encode_seconds", "decode_fps"),
    "represent": ("fit_seconds", "render_fps"),
}


def summary_view(task: str) -> tuple[str, ...]:
    """The columns of ``task``'s table in ``summary.md``."""
    task = task if task in SUMMARY_VIEW_SIZE else "represent"
    headline = tuple(m.name for m in REGISTRY if m.headline)
    return (*SUMMARY_VIEW_SIZE[task], *headline, *SUMMARY_VIEW_TIMES[task])


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary (mean ± std over images) as Markdown: one table per task, with that task's columns."""
    lines = ["# Summary: mean ± std over images", ""]
    lines.append(
        "One row per (method, setting, dataset, task, budget); `images` is the number of images averaged. "
        "Means over the `ok` records only; failed records are counted in `failed`. The full table with "
        "every column is `summary.csv`."
    )
    lines.append("")
    if summary.empty:
        return "\n".join([*lines, "No records."]) + "\n"
    for task in sorted(summary["task"].dropna().unique()):
        part = summary[summary["task"] == task]
        view = part[["method", "setting", "dataset", "budget"]].copy()
        view["images"] = part["n_images"]
        view["failed"] = part["n_failed"]
        for v in summary_view(str(task)):
            if f"{v}_mean" in part and part[f"{v}_mean"].notna().any():
                # the std column is dropped when every group has a single image
                std = part[f"{v}_std"] if f"{v}_std" in part else [float("nan")] * len(part)
                view[v] = [_pm(m, s) for m, s in zip(part[f"{v}_mean"], std, strict=True)]
        lines += [f"## task={task}", "", markdown_table(view), ""]
    return "\n".join(lines)


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return ""
    if pd.isna(std):
        return fmt(mean)
    # float noise of equal values (1e-16) reads as a real spread: show it as 0
    return f"{fmt(mean)} ± {fmt(0.0 if std <= 1e-9 * max(abs(mean), 1.0) else std, 2)}"


SPEED_KEYS = ["method", "setting", "dataset", "task", "budget", "device_name"]


def speed_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, setting, dataset, task, budget, device): medians over images of render FPS, decode
    FPS, fit (= encode for compress) seconds and decode seconds, and the largest peak GPU memory.

    The device is part of the key: a median over images timed on different GPUs would mean nothing.
    Medians, not means, because one slow image (a warm-up, a busy GPU) should not move a speed figure.
    """
    cols = [
        *SPEED_KEYS,
        "device_type",
        "n_images",
        "render_fps",
        "decode_fps",
        "fit_seconds",
        "encode_seconds",
        "decode_seconds",
        "peak_memory_mib",
    ]
    ok = ok_rows(df)
    if ok.empty:
        return pd.DataFrame(columns=cols)
    ok = ok.assign(device_name=ok["device_name"].fillna("unknown"))
    rows = []
    for key, g in ok.groupby(SPEED_KEYS, dropna=False, sort=True):
        row = dict(zip(SPEED_KEYS, key, strict=True))
        row["device_type"] = ",".join(sorted({str(t) for t in g["device_type"].dropna()}))
        row["n_images"] = int(g["image"].nunique())
        for c in ("render_fps", "decode_fps", "fit_seconds", "encode_seconds", "decode_seconds"):
            row[c] = g[c].median() if g[c].notna().any() else math.nan
        row["peak_memory_mib"] = (
            g["peak_memory_mib"].max() if g["peak_memory_mib"].notna().any() else math.nan
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def speed_markdown(table: pd.DataFrame) -> str:
    """The speed table as Markdown; the device column says what the numbers were measured on."""
    lines = ["# Speed: FPS, time and memory (median over images)", ""]
    lines.append(
        "render FPS = 1 / median of synchronised renders of the fitted (or decoded) model; decode FPS = "
        "1 / median time from file bytes to pixels. fit s is the encoder's fit (with QAT) for compress "
        "records. Peak memory is the largest over images (CUDA only). Compare speeds only within one device."
    )
    lines.append("")
    if table.empty:
        return "\n".join([*lines, "No ok records."]) + "\n"
    view = table.rename(
        columns={
            "device_name": "device",
            "n_images": "images",
            "render_fps": "render FPS",
            "decode_fps": "decode FPS",
            "fit_seconds": "fit s",
            "encode_seconds": "encode s",
            "decode_seconds": "decode s",
            "peak_memory_mib": "peak MiB",
        }
    ).drop(columns=["device_type"])
    lines.append(markdown_table(view))
    return "\n".join(lines) + "\n"
