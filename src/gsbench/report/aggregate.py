"""Every record under a results root into one tidy table (one row per record), and the summary over images.

The tidy table is the single input of every other report: RD curves, BD-rate, FPS tables, paper-vs-ours
and the CompressAI export all read it, so a number in any report can be traced to rows of
``records.csv`` (each row keeps its record's path).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..metrics import REGISTRY
from ..records import load_raw

# What identifies one point of a curve; ``setting`` separates runs of one method whose configs differ at
# the same budget (ablations, iteration counts, ...), so they are never averaged together.
KEYS = ("method", "setting", "dataset", "task", "budget")
# The registry's metrics (derived ones too) come first in numeric_columns() and summary_values(), read at
# each call, so that a metric registered after import is not left out.
OTHER_NUMERIC = (
    "bpp",
    "bpp_payload",
    "bitstream_bytes",
    "num_gaussians",
    "num_params",
    "fit_seconds",
    "encode_seconds",
    "decode_seconds",
    "render_fps",
    "render_seconds_median",
    "decode_fps",
    "decode_seconds_median",
    "peak_memory_mib",
    "height",
    "width",
    "iterations",
)
OTHER_SUMMARY_VALUES = (
    "bpp",
    "bpp_payload",
    "num_gaussians",
    "num_params",
    "fit_seconds",
    "encode_seconds",
    "decode_seconds",
    "render_fps",
    "decode_fps",
)
# Config sections whose differences make a different "setting" of a method: the method, its training,
# the renderer, the codec (quantiser bits, entropy coding) and an init network (Instant-GI's checkpoint).
# render.backend is left out: torch and triton compute the same image, and auto picks by device.
SETTING_SECTIONS = ("method", "train", "render", "codec", "init")
# methods whose decoder returns pixels (no render, no analytic payload)
PIXEL_CODECS = ("jpeg", "webp", "avif", "jxl")
# datasets that are whatever a directory holds (see gsbench.data.identity)
PATH_DATASETS = ("folder", "texture_stack")
SETTING_IGNORED = ("method.name", "render.backend")


def metric_names() -> tuple[str, ...]:
    """Every registered metric (derived ones right after their source): the metric columns of the report."""
    return REGISTRY.names()


def numeric_columns() -> tuple[str, ...]:
    """The columns of the tidy table that hold numbers."""
    return (*metric_names(), *OTHER_NUMERIC)


def summary_values() -> tuple[str, ...]:
    """The columns that :func:`summarize` gives a mean and std of."""
    return (*metric_names(), *OTHER_SUMMARY_VALUES)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(flatten(v, key))
            else:
                out[key] = v
    return out


def record_row(rec: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """One tidy row: identity, flattened metrics, rate, timings, device and provenance of a record."""
    metrics = rec.get("metrics") or {}
    render = rec.get("render") or {}
    decode = rec.get("decode") or {}
    device = rec.get("device") or {}
    git = rec.get("git") or {}
    config = rec.get("config") or {}
    train = config.get("train") or {}
    flat = {}
    for section in SETTING_SECTIONS:
        flat.update(flatten(config.get(section) or {}, section))
    pixels = rec.get("method") in PIXEL_CODECS
    payload = rec.get("bpp_payload")
    if pixels and payload is None:  # no analytic count: the file is the payload (older records left null)
        payload = rec.get("bpp")
    row = {
        "method": rec.get("method"),
        "dataset": dataset_key(rec),
        "task": rec.get("task") or "represent",
        "budget": rec.get("budget"),
        "budget_name": rec.get("budget_name") or "gaussians",
        "seed": rec.get("seed"),
        "image": rec.get("image"),
        "status": rec.get("status"),
        "error": rec.get("error"),
        **{m: metrics.get(m) for m in metric_names()},
        "bpp": rec.get("bpp"),
        "bpp_payload": payload,
        "bitstream_bytes": rec.get("bitstream_bytes"),
        "num_gaussians": rec.get("num_gaussians"),
        "num_params": rec.get("num_params"),
        "fit_seconds": rec.get("fit_seconds"),
        "encode_seconds": rec.get("encode_seconds"),
        "decode_seconds": rec.get("decode_seconds"),
        # a pixel codec's decoded image is not rendered; older records timed a copy under that name
        "render_fps": None if pixels else render.get("render_fps"),
        "render_seconds_median": None if pixels else render.get("render_seconds_median"),
        "decode_fps": decode.get("decode_fps"),
        "decode_seconds_median": decode.get("decode_seconds_median"),
        "peak_memory_mib": rec.get("peak_memory_mib"),
        "device_type": device.get("type"),
        "device_name": device.get("name"),
        "dataset_hash": rec.get("dataset_hash"),
        "dataset_path": rec.get("dataset_path") or ((config.get("dataset") or {}).get("path")),
        "height": rec.get("height"),
        "width": rec.get("width"),
        "iterations": train.get("iterations"),
        "config_hash": rec.get("config_hash"),
        "config_flat": json.dumps(flat, sort_keys=True, default=str),
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "finished_at": rec.get("finished_at"),
        "record_path": str(path) if path is not None else None,
        "source": rec.get("source"),
        "source_sha256": rec.get("source_sha256"),
        # files beside the record (the contact sheets show them); a texture stack's list of PNGs is not one
        "reconstruction_path": _beside(path, rec.get("reconstruction")),
        "bitstream_path": _beside(path, rec.get("bitstream")),
    }
    return row


def _beside(record_path: Path | None, name: Any) -> str | None:
    """The path of a file named in a record, which lives in the record's folder."""
    if record_path is None or not isinstance(name, str) or not name:
        return None
    return str(Path(record_path).parent / name)


def dataset_key(rec: dict[str, Any]) -> str | None:
    """The dataset a record belongs to in every table and plot.

    Records name a path dataset (``folder``, ``texture_stack``) by its label and content hash
    (``folder-photos-1a2b3c4d``). Older records say only ``folder``: they are told apart by the
    directory in their config (``folder-photos-nohash-<hash of the path>``), so runs on two different
    folders are never averaged, although a folder whose files changed between runs cannot be detected.
    """
    name = rec.get("dataset")
    if name not in PATH_DATASETS or rec.get("dataset_hash"):
        return name
    path = ((rec.get("config") or {}).get("dataset") or {}).get("path")
    if not path:
        return name
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(path)).name).strip("._") or "root"
    return f"{name}-{label}-nohash-{hashlib.sha256(str(path).encode()).hexdigest()[:6]}"


def records_frame(records: list[dict[str, Any]] | list[tuple[Path, dict[str, Any]]]) -> pd.DataFrame:
    """The tidy table of ``records`` (dicts, or ``(path, dict)`` pairs from :func:`load_raw`).

    Duplicates of one image (same method, dataset, task, budget, seed, config hash and device, e.g. a job
    copied into two folders or re-run elsewhere) are reduced to one row: an ``ok`` one if any, the latest.
    A ``setting`` column labels the config keys that differ between records of one method at one budget.
    """
    rows = [record_row(rec, path) for path, rec in _pairs(records)]
    df = pd.DataFrame(rows, columns=list(record_row({}).keys()))
    if df.empty:
        df["setting"] = pd.Series(dtype=object)
        return df[_ordered(df)]
    for col in numeric_columns():
        df[col] = pd.to_numeric(df[col], errors="coerce")
    df["budget"] = pd.to_numeric(df["budget"], errors="coerce").astype("Int64")
    df["setting"] = setting_labels(df)
    ident = ["method", "dataset", "task", "budget", "seed", "image", "config_hash", "device_name"]
    df["_ok"] = df["status"] == "ok"
    df["_when"] = _finish_time(df["finished_at"])
    df = df.sort_values(["_ok", "_when"], na_position="first", kind="stable")
    df = df.drop_duplicates(subset=ident, keep="last").drop(columns=["_ok", "_when"])
    df = df.sort_values(["method", "setting", "dataset", "task", "budget", "image", "seed"], kind="stable")
    return df[_ordered(df)].reset_index(drop=True)


def _finish_time(col: pd.Series) -> pd.Series:
    """``finished_at`` as epoch seconds: the runner writes a float; ISO strings are accepted too."""
    when = pd.to_numeric(col, errors="coerce")
    text = col[when.isna() & col.notna()]
    if len(text):
        parsed = pd.to_datetime(text.astype(str), errors="coerce", utc=True)
        when.loc[text.index] = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return when


def _pairs(records):
    for item in records:
        if isinstance(item, tuple):
            yield item
        else:
            yield None, item


def _ordered(df: pd.DataFrame) -> list[str]:
    first = ["method", "setting", "dataset", "task", "budget", "budget_name", "seed", "image", "status"]
    return [*first, *[c for c in df.columns if c not in first]]


def setting_labels(df: pd.DataFrame) -> pd.Series:
    """Per row, ``key=value`` for every config key that differs between records of the same method at the
    same (dataset, task, budget); empty when all runs of a method agree.

    Keys that change only *with* the budget (a codec's ``method.quality``, a budget-derived schedule) are
    not settings: they would split one RD curve into one-point lines.
    """
    flats = df["config_flat"].map(json.loads)
    labels = pd.Series([""] * len(df), index=df.index, dtype=object)
    for _method, idx in df.groupby("method", dropna=False).groups.items():
        sub = df.loc[idx]
        varying: set[str] = set()
        for _, gidx in sub.groupby(["dataset", "task", "budget"], dropna=False).groups.items():
            group = [flats[i] for i in gidx]
            keys = set().union(*[f.keys() for f in group])
            for k in keys - set(SETTING_IGNORED):
                if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in group}) > 1:
                    varying.add(k)
        if varying:
            for i in idx:
                labels[i] = " ".join(f"{k}={format_value(flats[i].get(k))}" for k in sorted(varying))
    return labels


def format_value(v: Any) -> str:
    """Config values as one writes them on the command line (``false``, ``null``, ``1e-3``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    return str(v)


def content_conflicts(df: pd.DataFrame) -> list[str]:
    """``dataset/image`` names whose records scored different files (different ``source_sha256``).

    A folder's name carries its content hash, but a named dataset (``kodak``) is trusted by name: a
    modified copy run with ``dataset.verify=false`` would be averaged with the real one. Records that
    hold the image's hash let the report say so.
    """
    if "source_sha256" not in df or df["source_sha256"].isna().all():
        return []
    known = df[df["source_sha256"].notna()]
    counts = known.groupby(["dataset", "image"])["source_sha256"].nunique()
    return [f"{d}/{i}" for (d, i), n in counts.items() if n > 1]


def load_frame(root: Path) -> pd.DataFrame:
    """The tidy table of every record below ``root``."""
    return records_frame(load_raw(root))


def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Only the ``ok`` records: failed ones carry no metrics and are never averaged."""
    return df[df["status"] == "ok"]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over images per (method, setting, dataset, task, budget).

    ``n_ok``/``n_failed`` count records; ``n_images`` counts distinct images among the ok ones (several
    seeds of one image are averaged like more images). Only ok records enter the means; a null metric
    (e.g. LPIPS without weights) is skipped for that metric alone. ``std`` is the sample standard
    deviation (ddof=1), empty for a single image.
    """
    cols = [*KEYS, "n_records", "n_ok", "n_failed", "n_images"]
    values = [v for v in summary_values() if v in df.columns]
    for v in values:
        cols += [f"{v}_mean", f"{v}_std"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for key, g in df.groupby(list(KEYS), dropna=False, sort=True):
        ok = ok_rows(g)
        row = dict(zip(KEYS, key, strict=True))
        row.update(
            n_records=len(g),
            n_ok=len(ok),
            n_failed=int((g["status"] != "ok").sum()),
            n_images=int(ok["image"].nunique()),
        )
        for v in values:
            vals = pd.to_numeric(ok[v], errors="coerce")
            row[f"{v}_mean"] = vals.mean() if vals.notna().any() else np.nan
            row[f"{v}_std"] = vals.std(ddof=1) if vals.notna().sum() > 1 else np.nan
        out.append(row)
    summary = pd.DataFrame(out, columns=cols)
    # columns that are empty for every group (e.g. bpp in a represent-only root) only add noise
    return summary.dropna(axis=1, how="all")


def curve_points(
    df: pd.DataFrame, x: str, y: str, task: str | None = None, agg: str = "mean"
) -> pd.DataFrame:
    """Mean (or median) over images of per-image ``x`` and ``y`` at each budget: the papers' RD points.

    One row per (dataset, method, setting, budget), sorted by ``x``; ``n`` is the number of images with
    both values. Rows with either value missing are left out of that point.
    """
    ok = ok_rows(df)
    if task is not None:
        ok = ok[ok["task"] == task]
    ok = ok[ok[x].notna() & ok[y].notna()] if x in ok and y in ok else ok.iloc[0:0]
    cols = ["dataset", "method", "setting", "budget", x, y, "n"]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    grouped = ok.groupby(["dataset", "method", "setting", "budget"], dropna=False)
    pts = grouped[[x, y]].agg(agg)
    pts["n"] = grouped["image"].nunique()
    pts = pts.reset_index()
    return pts.sort_values(["dataset", "method", "setting", x], kind="stable").reset_index(drop=True)[cols]


def curve_name(method: str, setting: str) -> str:
    """The label of one curve: the method, and its setting when runs of the method differ."""
    return f"{method} [{setting}]" if setting else str(method)


def write_tidy(df: pd.DataFrame, out: Path) -> list[Path]:
    """``records.csv`` and ``records.parquet`` (the tidy table) in ``out``.

    Parquet needs pyarrow (or fastparquet), which gsbench does not require: without it only the CSV is
    written, and a note says so.
    """
    out.mkdir(parents=True, exist_ok=True)
    csv, parquet = out / "records.csv", out / "records.parquet"
    df.to_csv(csv, index=False)
    frame = df.copy()
    for col in frame.columns:  # object columns may mix str and None (or bools): Parquet wants one type
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: None if v is None or v != v else str(v))
    try:
        frame.to_parquet(parquet, index=False)
    except ImportError as exc:
        print(f"gsbench report: records.parquet not written ({exc})", file=sys.stderr)
        return [csv]
    return [csv, parquet]
