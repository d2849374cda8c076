"""RD curves as CompressAI result JSON, so gsbench curves and CompressAI's published ones plot together.

CompressAI's files (``results/image/kodak/jpeg.json`` and friends) look like::

    {"name": "JPEG", "description": "JPEG. Pillow version 7.1.2",
     "results": {"psnr-rgb": [...], "ms-ssim-rgb": [...], "bpp": [...],
                 "encoding_time": [...], "decoding_time": [...]}}

one entry per RD point, sorted by rate, each the mean over the images. ``ms-ssim-rgb`` is the linear
MS-SSIM (CompressAI's plot converts to dB itself). We add, beside those keys, ``budget`` and ``n_images``
per point (CompressAI's plotting reads only the keys it plots, so extra keys are harmless).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ..metrics import REGISTRY
from .aggregate import curve_name, ok_rows

# our non-metric columns -> CompressAI's keys; a metric's key is its ``compressai_key`` in the registry
TIMING_KEYS = {"encode_seconds": "encoding_time", "decode_seconds": "decoding_time"}


def compressai_keys() -> dict[str, str]:
    """Our column -> CompressAI's key, beside ``bpp``: every metric that has a key, then the timings."""
    metrics = {m.name: m.compressai_key for m in REGISTRY if m.compressai_key}
    return {**metrics, **TIMING_KEYS}


def _num(v: Any) -> float | None:
    """JSON has no NaN: a missing mean becomes null."""
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def compressai_curves(df: pd.DataFrame, rate: str = "bpp") -> list[dict[str, Any]]:
    """One CompressAI-style dict per (dataset, method, setting) of the compress records.

    Each point is the mean over ok images at one budget of the per-image values; ``rate`` picks the
    file-size ``bpp`` (default) or the paper-style ``bpp_payload`` for the ``bpp`` key.
    """
    ok = ok_rows(df)
    ok = ok[(ok["task"] == "compress") & ok[rate].notna()]
    out = []
    for (dataset, method, setting), g in ok.groupby(
        ["dataset", "method", "setting"], sort=True, dropna=False
    ):
        cols = compressai_keys()
        grouped = g.groupby("budget", sort=True)
        means = grouped[[rate, *cols]].mean()
        means["n_images"] = grouped["image"].nunique()
        means = means.reset_index().sort_values(rate)
        devices = sorted({str(d) for d in g["device_name"].dropna()})
        commits = sorted({str(c)[:10] for c in g["git_commit"].dropna()})
        results: dict[str, list] = {"bpp": [_num(v) for v in means[rate]]}
        for col, key in cols.items():
            results[key] = [_num(v) for v in means[col]]
        results["budget"] = [int(b) for b in means["budget"]]
        results["n_images"] = [int(n) for n in means["n_images"]]
        budget_name = str(g["budget_name"].dropna().iloc[0]) if g["budget_name"].notna().any() else "budget"
        out.append(
            {
                "name": f"gsbench {curve_name(method, setting)}",
                "description": (
                    f"gsbench {method} on {dataset}: mean over images per point "
                    f"({'file size' if rate == 'bpp' else 'analytic payload'} bpp; budget = {budget_name}); "
                    f"device {', '.join(devices) or 'unknown'}; commit {', '.join(commits) or 'unknown'}"
                ),
                "dataset": dataset,
                "method": method,
                "setting": setting,
                "results": results,
            }
        )
    return out


def write_compressai(df: pd.DataFrame, out: Path, rate: str = "bpp") -> list[Path]:
    """``out/<dataset>/gsbench-<method>[-<setting>].json`` for every compress curve."""
    written = []
    for curve in compressai_curves(df, rate):
        name = curve["method"] + (f"-{curve['setting']}" if curve["setting"] else "")
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)
        path = out / str(curve["dataset"]) / f"gsbench-{safe}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {k: curve[k] for k in ("name", "description", "results")}
        path.write_text(json.dumps(body, indent=2, allow_nan=False) + "\n")
        written.append(path)
    return written
