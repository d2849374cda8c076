"""Paper vs ours: match our aggregated results to the published values held in ``experiments/*.yaml``.

An experiment file names the paper and table, the sweep that reproduces it, the paper's setting and the
published values (one row per method, dataset, task, budget or bpp, metric). Each row is matched to our
``ok`` records; the schema and the matching rules are in docs/reports.md.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .aggregate import ok_rows
from .tables import fmt, markdown_table

NOT_RUN = "not run"
REQUIRED = ("title", "paper", "sweep", "setting", "results")
ROW_REQUIRED = ("method", "dataset", "task", "metric", "value")


class ExperimentError(ValueError):
    """An experiment file that cannot be used; the message names the file and what is wrong."""


def load_experiment(path: Path) -> dict[str, Any]:
    """Read and check an experiment YAML; ``stem`` is added (the file name without ``.yaml``)."""
    path = Path(path)
    try:
        exp = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ExperimentError(f"{path}: cannot read: {exc}") from None
    if not isinstance(exp, dict):
        raise ExperimentError(f"{path}: expected a mapping at the top level")
    missing = [k for k in REQUIRED if k not in exp]
    if missing:
        raise ExperimentError(f"{path}: missing keys: {', '.join(missing)}")
    for i, row in enumerate(exp["results"]):
        lacking = [k for k in ROW_REQUIRED if k not in row]
        if lacking:
            raise ExperimentError(f"{path}: results[{i}] lacks {', '.join(lacking)}")
    exp["stem"] = path.stem
    if isinstance(exp["sweep"], str):
        exp["sweep"] = [exp["sweep"]]
    return exp


def _same(a: Any, b: Any) -> bool:
    """Config values equal as the command line means them: 1e-3 == 0.001, "false" == False."""
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(a).lower() == str(b).lower()


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["method.topk_norm=false"]`` -> ``{"method.topk_norm": False}``."""
    out = {}
    for item in items or []:
        key, _, value = str(item).partition("=")
        out[key.strip()] = yaml.safe_load(value) if value else None
    return out


def _matches(flat: dict[str, Any], overrides: dict[str, Any]) -> bool:
    return all(k in flat and _same(flat[k], v) for k, v in overrides.items())


def _variant_mask(recs: pd.DataFrame, row: dict, siblings: list[dict]) -> pd.Series:
    """Records of this row's variant: its overrides hold, and no other variant's overrides do (so the
    plain row of an ablation table does not average in the ablated runs)."""
    own = parse_overrides(row.get("variant_overrides"))
    others = []
    for sib in siblings:
        sov = parse_overrides(sib.get("variant_overrides"))
        if sov and sov != own and not (sov.items() <= own.items()):
            others.append(sov)
    flats = recs["config_flat"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
    keep = flats.map(lambda f: _matches(f, own) and not any(_matches(f, o) for o in others))
    return keep.astype(bool)


def _aggregate(values: pd.Series, metric: str) -> float:
    # speeds and times: median over images like the speed table; quality: mean like the papers
    if metric.endswith("_fps") or metric.endswith("seconds"):
        return float(values.median())
    return float(values.mean())


def _paper_dataset(row: dict, setting: dict) -> str | None:
    if row.get("paper_dataset"):
        return str(row["paper_dataset"])
    ds = setting.get("dataset")
    if isinstance(ds, dict):
        return ds.get(row["dataset"])
    return None if ds is None else str(ds)


def match_row(df: pd.DataFrame, row: dict, setting: dict, siblings: list[dict]) -> dict[str, Any]:
    """Our value for one published row, with n images, whether the setting matches, and a note."""
    metric = row["metric"]
    out: dict[str, Any] = {"ours": NOT_RUN, "n_images": None, "note": ""}
    paper_ds = _paper_dataset(row, setting)
    out["dataset_match"] = (
        "unknown"
        if paper_ds is None
        else ("yes" if paper_ds == row["dataset"] else f"no (paper: {paper_ds})")
    )
    sel = df[
        (df["method"] == row["method"]) & (df["dataset"] == row["dataset"]) & (df["task"] == row["task"])
    ]
    if row.get("budget") is not None and row.get("bpp") is None:
        sel = sel[sel["budget"] == int(row["budget"])]
    if not sel.empty:
        sel = sel[_variant_mask(sel, row, siblings)]
    recs = ok_rows(sel)
    paper_iters = row.get("iterations", setting.get("iterations"))
    out["iterations"] = "" if paper_iters is None else f"paper {paper_iters}"
    out["device"] = ""
    if recs.empty:
        failed = int((sel["status"] != "ok").sum()) if not sel.empty else 0
        if failed:
            out["ours"] = f"failed ({failed})"
        return out
    notes = []
    iters = recs["iterations"]
    if paper_iters is not None and (iters == paper_iters).any():
        recs = recs[iters == paper_iters]
        out["iterations"] = f"yes ({int(paper_iters)})"
    elif iters.notna().any():
        most = iters.max()  # the longest fits we have: never average 500- and 50k-iteration runs
        recs = recs[iters == most]
        out["iterations"] = (
            f"paper unknown (ours {int(most)})"
            if paper_iters is None
            else f"no (ours {int(most)}, paper {paper_iters})"
        )
    else:
        out["iterations"] = "n/a"
    if recs["setting"].nunique() > 1:
        counts = recs["setting"].value_counts()
        notes.append(f"setting [{counts.index[0]}] of {len(counts)}")
        recs = recs[recs["setting"] == counts.index[0]]
    if metric not in recs.columns:
        out["ours"] = "no such metric"
        return out
    if row.get("bpp") is not None:
        value, n, note = _rd_value(recs, row, metric)
        notes.append(note)
    else:
        if row.get("budget") is None and recs["budget"].nunique() > 1:
            counts = recs.groupby("budget")["image"].nunique()
            pick = counts[counts == counts.max()].index.max()
            notes.append(f"budget {pick} of {', '.join(str(b) for b in counts.index)}")
            recs = recs[recs["budget"] == pick]
        vals = recs[metric].dropna()
        value, n = (
            (_aggregate(vals, metric), int(recs.loc[vals.index, "image"].nunique()))
            if len(vals)
            else (None, 0)
        )
    types = set(recs["device_type"].dropna())
    names = ", ".join(sorted({str(d) for d in recs["device_name"].dropna()}))
    gpu = row.get("gpu", setting.get("gpu"))
    vs = f"; paper {gpu}" if gpu else ""
    out["device"] = (
        f"yes ({names}{vs})" if types == {"cuda"} else f"no ({'/'.join(sorted(types)) or '?'}: {names}{vs})"
    )
    total = setting.get("images")  # the paper's image count: fewer of ours is a labelled subset
    if total and 0 < n < int(total):
        names = sorted(str(x) for x in recs["image"].unique())
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        notes.insert(0, f"subset: {n} of {int(total)} images ({shown})")
    out["ours"] = value if value is not None else "no value"
    out["n_images"] = n
    out["note"] = "; ".join(x for x in notes if x)
    return out


def _rd_value(recs: pd.DataFrame, row: dict, metric: str) -> tuple[float | None, int, str]:
    """Our ``metric`` at the paper's bpp: interpolated (linear in log bpp) on our mean RD curve when the
    bpp lies inside our range, else the nearest point; speeds always come from the nearest point."""
    rate = row.get("rate", "bpp")
    note = ""
    if rate not in recs or recs[rate].isna().all():
        note = f"no {rate}; used file bpp. "
        rate = "bpp"
    have = recs[recs[rate].notna() & recs[metric].notna()]
    if have.empty:
        return None, 0, note + f"no {metric} values"
    grouped = have.groupby("budget")
    pts = pd.DataFrame(
        {
            "rate": grouped[rate].mean(),
            "value": grouped[metric].agg(lambda v: _aggregate(v, metric)),
            "n": grouped["image"].nunique(),
        }
    ).sort_values("rate")
    target = float(row["bpp"])
    lo, hi = pts["rate"].min(), pts["rate"].max()
    speed = metric.endswith("_fps") or metric.endswith("seconds")
    if not speed and len(pts) >= 2 and lo <= target <= hi:
        x = np.log(pts["rate"].to_numpy())
        value = float(np.interp(math.log(target), x, pts["value"].to_numpy()))
        right = int(np.searchsorted(x, math.log(target)))
        n = int(pts["n"].iloc[max(right - 1, 0) : right + 1].min())
        return value, n, note + f"interpolated at {rate} {target:g} on our mean RD curve ({len(pts)} points)"
    i = int(np.argmin(np.abs(np.log(pts["rate"].to_numpy()) - math.log(target))))
    near = pts.iloc[i]
    where = "" if lo <= target <= hi or speed else f", outside our range {fmt(lo)}–{fmt(hi)}"
    return (
        float(near["value"]),
        int(near["n"]),
        note + f"nearest point: {rate} {fmt(near['rate'])} (budget {pts.index[i]}){where}",
    )


TABLE_COLUMNS = [
    "row",
    "method",
    "dataset",
    "point",
    "metric",
    "source",
    "paper",
    "ours",
    "ours − paper",
    "n images",
    "dataset match",
    "iterations",
    "GPU",
    "note",
]


def paper_table(df: pd.DataFrame, exp: dict[str, Any]) -> pd.DataFrame:
    """One line per published value of ``exp``: paper, ours, difference and setting checks."""
    setting = exp.get("setting") or {}
    rows = []
    results = exp["results"]
    for row in results:
        siblings = [
            r
            for r in results
            if r is not row
            and (r["method"], r["dataset"], r["task"]) == (row["method"], row["dataset"], row["task"])
        ]
        m = match_row(df, row, setting, siblings)
        ours = m["ours"]
        diff = ours - float(row["value"]) if isinstance(ours, float) else None
        point = (
            f"bpp {row['bpp']:g}"
            if row.get("bpp") is not None
            else ("" if row.get("budget") is None else str(row["budget"]))
        )
        note = "; ".join(x for x in (row.get("note"), m["note"]) if x)
        rows.append(
            [
                row.get("label", row["method"]),
                row["method"],
                row["dataset"],
                point,
                row["metric"],
                row.get("source", "paper"),
                float(row["value"]),
                ours,
                diff,
                m["n_images"],
                m["dataset_match"],
                m["iterations"],
                m["device"],
                note,
            ]
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table["n images"] = table["n images"].astype("Int64")  # blank, not 0 or 3.0, where nothing ran
    return table


def paper_markdown(exp: dict[str, Any], table: pd.DataFrame) -> str:
    """The experiment's header (paper, sweep, setting, GPU time) and its paper-vs-ours table."""
    p = exp.get("paper") or {}
    s = exp.get("setting") or {}
    where = ", ".join(
        x
        for x in (
            p.get("venue"),
            f"Table {p['table']}" if p.get("table") else None,
            f"p. {p['page']}" if p.get("page") else None,
            f"arXiv {p['arxiv']}" if p.get("arxiv") else None,
        )
        if x
    )
    lines = [f"## {exp['title']}", "", f"**Paper:** {p.get('name', '?')} ({where})."]
    if p.get("values_from"):
        lines.append(f"Values from: {p['values_from']}.")
    ds = s.get("dataset")
    ds_text = ", ".join(f"{k} = {v}" for k, v in ds.items()) if isinstance(ds, dict) else str(ds)
    lines += [
        "",
        f"**Paper's setting:** dataset {ds_text}"
        + (f" ({s['dataset_note']})" if s.get("dataset_note") else "")
        + f"; iterations {s.get('iterations', '?')}; GPU {s.get('gpu') or 'not stated'}.",
        f"**Estimated GPU time:** {exp.get('gpu_hours', '?')} h"
        + (f" ({exp['gpu_time_note']})" if exp.get("gpu_time_note") else "")
        + ".",
        "",
        "**Sweep:**",
        "",
        "```bash",
        *exp["sweep"],
        "```",
        "",
        markdown_table(table),
        "",
    ]
    return "\n".join(lines)


def write_paper_tables(df: pd.DataFrame, experiments: list[Path], out: Path) -> list[Path]:
    """``paper/<stem>.{md,csv}`` per experiment and ``paper_vs_ours.md`` with all of them."""
    out.mkdir(parents=True, exist_ok=True)
    written, sections = (
        [],
        [
            "# Paper vs ours",
            "",
            "`not run`: no ok record matches the row. `ours − paper` is ours minus the "
            "published value. Quality is the mean over images, speed the median.",
            "",
        ],
    )
    for path in experiments:
        exp = load_experiment(path)
        table = paper_table(df, exp)
        md = paper_markdown(exp, table)
        (out / f"{exp['stem']}.md").write_text(md)
        table.to_csv(out / f"{exp['stem']}.csv", index=False)
        written += [out / f"{exp['stem']}.md", out / f"{exp['stem']}.csv"]
        sections.append(md)
    combined = out.parent / "paper_vs_ours.md"
    combined.write_text("\n".join(sections))
    return [*written, combined]
