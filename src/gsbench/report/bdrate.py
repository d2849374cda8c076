"""Bjontegaard deltas (BD-rate, BD-PSNR) of every RD curve against an anchor method.

Computed with the ``bjontegaard`` package (FAU; the JVET/VCEG-M33 definitions) in three interpolations:
``cubic`` (the original VCEG-M33 polynomial fit of log-rate), ``pchip`` (piecewise cubic Hermite, the
JVET CTC way) and ``akima``. Points are the means over images at each budget (see
:func:`gsbench.report.aggregate.curve_points`).

Rules, each reported in the ``warnings`` column rather than hidden:
* the cubic fit needs >= 4 points per curve (3 points leave a cubic underdetermined): with fewer it is
  left empty and only pchip/akima are given, which work from 2 points (2 points: a straight line);
* a curve with < 2 points has no BD at all;
* the overlap is measured on the distortion axis (PSNR) as a fraction of the anchor's range; below
  ``min_overlap`` (20 %) the values are given but flagged, at 0 they are undefined;
* non-monotone curves (quality falling as rate rises) are flagged: BD assumes monotone curves.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..metrics import REGISTRY
from .aggregate import curve_name, curve_points

INTERPOLATIONS = ("cubic", "pchip", "akima")
MIN_OVERLAP = 0.2


def bd_metrics() -> tuple[str, ...]:
    """The distortion metrics BD runs over: those the registry marks ``bd`` (PSNR and MS-SSIM in dB)."""
    return tuple(m.name for m in REGISTRY if m.bd)


# bd_dist_* is the delta of the row's metric (dB for both PSNR and MS-SSIM in dB)
BD_COLUMNS = [
    "dataset",
    "anchor",
    "method",
    "metric",
    "rate",
    "n_anchor",
    "n_test",
    *[f"bd_rate_{m}" for m in INTERPOLATIONS],
    *[f"bd_dist_{m}" for m in INTERPOLATIONS],
    "overlap_lo",
    "overlap_hi",
    "overlap_pct",
    "warnings",
]


@dataclass
class BDResult:
    """Deltas of a test curve against an anchor curve, per interpolation, with the overlap and warnings.

    ``bd_rate`` is in percent (negative: the test needs fewer bits for the same quality); ``bd_dist`` is
    in the distortion metric's unit (positive: the test is better at the same rate).
    """

    bd_rate: dict[str, float] = field(default_factory=dict)
    bd_dist: dict[str, float] = field(default_factory=dict)
    overlap_lo: float = math.nan
    overlap_hi: float = math.nan
    overlap_frac: float = math.nan  # of the anchor's distortion range
    rate_overlap_frac: float = math.nan  # of the anchor's log-rate range (what BD-PSNR integrates over)
    n_anchor: int = 0
    n_test: int = 0
    warnings: list[str] = field(default_factory=list)


def _merge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by ``x`` and average ``y`` over equal ``x``: the interpolators need strictly increasing x."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ux, inv = np.unique(x, return_inverse=True)
    uy = np.bincount(inv, weights=y) / np.bincount(inv)
    return ux, uy


def _clean(rate, dist) -> tuple[np.ndarray, np.ndarray]:
    rate, dist = np.asarray(rate, dtype=float), np.asarray(dist, dtype=float)
    keep = np.isfinite(rate) & np.isfinite(dist) & (rate > 0)
    return rate[keep], dist[keep]


def _overlap(a: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
    lo, hi = max(a.min(), t.min()), min(a.max(), t.max())
    span = a.max() - a.min()
    frac = max(hi - lo, 0.0) / span if span > 0 else (1.0 if hi >= lo else 0.0)
    return float(lo), float(hi), float(frac)


def bd(rate_anchor, dist_anchor, rate_test, dist_test, min_overlap: float = MIN_OVERLAP) -> BDResult:
    """BD-rate and BD-distortion of (``rate_test``, ``dist_test``) against the anchor, all interpolations.

    Never raises for bad curves: what cannot be computed is NaN with a line in ``warnings``.
    """
    import bjontegaard

    ra, da = _clean(rate_anchor, dist_anchor)
    rt, dt = _clean(rate_test, dist_test)
    res = BDResult(n_anchor=len(ra), n_test=len(rt))
    nan = dict.fromkeys(INTERPOLATIONS, math.nan)
    res.bd_rate, res.bd_dist = dict(nan), dict(nan)
    if min(len(ra), len(rt)) < 2:
        res.warnings.append(f"needs >= 2 points per curve (anchor {len(ra)}, test {len(rt)}): no BD")
        return res
    for name, r, d in (("anchor", ra, da), ("test", rt, dt)):
        if len(np.unique(r)) < 2 or len(np.unique(d)) < 2:
            res.warnings.append(f"{name} curve has a single rate or quality value: no BD")
            return res
    for name, r, d in (("anchor", ra, da), ("test", rt, dt)):
        order = np.argsort(r)
        if np.any(np.diff(d[order]) < 0):
            res.warnings.append(f"{name} curve is not monotone: BD values are unreliable")
    res.overlap_lo, res.overlap_hi, res.overlap_frac = _overlap(da, dt)
    _, _, res.rate_overlap_frac = _overlap(np.log10(ra), np.log10(rt))
    if res.overlap_frac == 0 or res.rate_overlap_frac == 0:
        res.warnings.append("curves do not overlap: BD undefined")
        return res
    if res.overlap_frac < min_overlap:
        res.warnings.append(
            f"low overlap: {100 * res.overlap_frac:.0f}% of the anchor's quality range "
            f"(< {100 * min_overlap:.0f}%)"
        )
    if res.rate_overlap_frac < min_overlap:
        res.warnings.append(
            f"low rate overlap: {100 * res.rate_overlap_frac:.0f}% of the anchor's log-rate range"
        )
    # BD-rate integrates log-rate over quality (points ordered by quality); BD-PSNR the reverse
    xa_d, ya_d = _merge(da, ra)
    xt_d, yt_d = _merge(dt, rt)
    xa_r, ya_r = _merge(ra, da)
    xt_r, yt_r = _merge(rt, dt)
    n_a, n_t = min(len(xa_d), len(xa_r)), min(len(xt_d), len(xt_r))  # distinct points after merging
    if min(n_a, n_t) < 4:
        res.warnings.append(
            f"fewer than 4 points (anchor {n_a}, test {n_t}): cubic left out, pchip/akima only"
        )
    for method in INTERPOLATIONS:
        if method == "cubic" and min(n_a, n_t) < 4:
            continue
        with warnings.catch_warnings():
            # the package warns on low overlap and ill-conditioned fits: we report our own overlap
            warnings.simplefilter("ignore")
            try:
                res.bd_rate[method] = float(
                    bjontegaard.bd_rate(
                        ya_d, xa_d, yt_d, xt_d, method, require_matching_points=False, min_overlap=0
                    )
                )
                res.bd_dist[method] = float(
                    bjontegaard.bd_psnr(
                        xa_r, ya_r, xt_r, yt_r, method, require_matching_points=False, min_overlap=0
                    )
                )
            except (ValueError, np.linalg.LinAlgError) as exc:
                res.warnings.append(f"{method}: {exc}")
    return res


def bd_table(
    df: pd.DataFrame,
    anchor: str,
    rate: str = "bpp",
    metrics: tuple[str, ...] | None = None,
    min_overlap: float = MIN_OVERLAP,
) -> pd.DataFrame:
    """BD of every compress curve against ``anchor`` (a method name), per dataset and metric.

    The anchor's first setting is used when it has several (named in the warnings). Datasets without
    the anchor get one row saying so, so a missing anchor is visible rather than silently empty.
    ``metrics`` defaults to :func:`bd_metrics`.
    """
    rows = []
    for metric in bd_metrics() if metrics is None else metrics:
        pts = curve_points(df, rate, metric, task="compress")
        if pts.empty:
            continue
        for dataset, dpts in pts.groupby("dataset", sort=True):
            curves = {(m, s): g for (m, s), g in dpts.groupby(["method", "setting"], sort=True, dropna=False)}
            anchors = [k for k in curves if k[0] == anchor]
            if not anchors:
                rows.append(
                    {
                        "dataset": dataset,
                        "anchor": anchor,
                        "metric": metric,
                        "warnings": f"anchor {anchor!r} has no {metric} points on {dataset}",
                    }
                )
                continue
            akey = anchors[0]
            a = curves[akey]
            note = [f"anchor setting {akey[1]!r} of {len(anchors)}"] if len(anchors) > 1 else []
            for key, t in curves.items():
                if key == akey:
                    continue
                r = bd(a[rate], a[metric], t[rate], t[metric], min_overlap)
                counts = sorted({int(n) for n in (*a["n"], *t["n"])})
                if len(counts) > 1:  # an unfinished sweep: points average different image sets
                    r.warnings.append(f"points average {counts[0]}–{counts[-1]} images")
                row = {
                    "dataset": dataset,
                    "anchor": curve_name(*akey),
                    "method": curve_name(*key),
                    "metric": metric,
                    "rate": rate,
                    "n_anchor": r.n_anchor,
                    "n_test": r.n_test,
                }
                for m in INTERPOLATIONS:
                    row[f"bd_rate_{m}"] = r.bd_rate[m]
                for m in INTERPOLATIONS:
                    row[f"bd_dist_{m}"] = r.bd_dist[m]
                row.update(
                    overlap_lo=r.overlap_lo,
                    overlap_hi=r.overlap_hi,
                    overlap_pct=100 * r.overlap_frac,
                    warnings="; ".join(note + r.warnings),
                )
                rows.append(row)
    return pd.DataFrame(rows, columns=BD_COLUMNS)


def _text(col: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else str(v) for v in col]


def bd_markdown(table: pd.DataFrame, anchor: str) -> str:
    """The BD table as Markdown: one section per metric, values rounded for reading."""
    from .tables import fmt, markdown_table

    lines = [f"# BD-rate and BD-quality against `{anchor}`", ""]
    lines.append(
        "Negative BD-rate: fewer bits than the anchor at equal quality. Positive BD-PSNR: higher quality "
        "at equal rate. Curves are means over images at each budget; cubic needs >= 4 points per curve; "
        "the overlap is the quality range both curves cover, as a share of the anchor's."
    )
    if table.empty:
        note = "No curve to compare: BD needs the anchor and another method's compress records on a dataset."
        return "\n".join([*lines, "", note]) + "\n"
    for metric, g in table.groupby("metric", sort=False):
        label = REGISTRY.get(metric).bd_label if metric in REGISTRY else f"BD-{metric}"
        lines += ["", f"## {label}", ""]
        view = pd.DataFrame(
            {
                "dataset": g["dataset"],
                "method": _text(g["method"]),
                "points (anchor/test)": [
                    "" if pd.isna(a) else f"{int(a)}/{int(t)}"
                    for a, t in zip(g["n_anchor"], g["n_test"], strict=True)
                ],
                **{f"BD-rate {m} (%)": g[f"bd_rate_{m}"] for m in INTERPOLATIONS},
                **{f"{label} {m}": g[f"bd_dist_{m}"] for m in INTERPOLATIONS},
                "overlap": [
                    "" if pd.isna(lo) else f"{fmt(lo)}–{fmt(hi)} ({pct:.0f}%)"
                    for lo, hi, pct in zip(g["overlap_lo"], g["overlap_hi"], g["overlap_pct"], strict=True)
                ],
                "warnings": _text(g["warnings"]),
            }
        )
        lines.append(markdown_table(view))
    return "\n".join(lines) + "\n"
