"""A job's per-image table: ``results.csv`` in the job folder and the table printed when the job ends.

The columns follow the task (:mod:`gsbench.columns`): a compress run shows bpp, the analytic payload,
the file's bytes and the encode/decode timings; a represent run shows the fit time and render FPS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..columns import COUNTS, printed_columns, record_values, task_columns


def summary_table(records: Iterable[Mapping[str, Any]], task: str | None = None) -> pd.DataFrame:
    """Per-image rows (metrics flattened) plus a final ``mean`` row over the ``ok`` images.

    ``task`` picks the columns; by default the task of the first record (``represent`` without one).
    Columns of the task always exist (empty when no record has them), so a CSV's header says what the
    task measures even when a value is missing; further metrics (texture maps) follow them.
    """
    records = list(records)
    if task is None:
        task = str(next((r.get("task") for r in records if r.get("task")), "represent"))
    columns = ("image", "status", *task_columns(task))
    rows = [{"image": r.get("image"), "status": r.get("status"), **record_values(r)} for r in records]
    df = pd.DataFrame(rows)
    for col in columns:
        if col not in df.columns:
            df[col] = None
    # further columns only where some record has a value (texture maps' metrics; not the other task's)
    extra = [c for c in df.columns if c not in columns and df[c].notna().any()]
    df = df[[*columns, *extra]]
    ok = df[df["status"] == "ok"]
    if len(ok):
        mean = ok.drop(columns=["image", "status"]).apply(pd.to_numeric, errors="coerce").mean()
        row = {"image": f"mean ({len(ok)} ok)", "status": "", **mean.to_dict()}
        df = pd.concat([df, pd.DataFrame([row])], ignore_index=True)
    return df


def format_table(table: pd.DataFrame, task: str) -> str:
    """The printed view of ``table``: the task's main columns, counts without decimals, 4 decimals else.

    A column that is empty for every row (e.g. ``render_fps`` of a pixel codec) is left out of the print,
    not of ``results.csv``.
    """
    wanted = ["image", "status", *printed_columns(task)]
    cols = [c for c in wanted if c in ("image", "status") or _shown(table, c)]
    view = table[cols].copy()
    formatters = {c: _count for c in COUNTS if c in cols}
    for c in cols[2:]:
        formatters.setdefault(c, _number)
    return view.to_string(index=False, formatters=formatters, na_rep="")


def _shown(table: pd.DataFrame, col: str) -> bool:
    """Print a column unless it is absent, empty, or Gaussians that a pixel codec does not have (all 0)."""
    if col not in table.columns:
        return False
    values = pd.to_numeric(table[col], errors="coerce").dropna()
    return len(values) > 0 and not (col == "num_gaussians" and (values == 0).all())


def _count(v: Any) -> str:
    return "" if v is None or pd.isna(v) else f"{float(v):.0f}"


def _number(v: Any) -> str:
    if v is None or pd.isna(v):
        return ""
    v = float(v)
    return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.4f}"


def write_results(table: pd.DataFrame, output_dir: Path) -> Path:
    """``results.csv`` in ``output_dir`` (every column of ``table``); returns its path."""
    csv = Path(output_dir) / "results.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    return csv
