"""RD curves (compress: bpp vs PSNR / MS-SSIM dB / LPIPS) and budget curves (represent: PSNR vs Gaussians
and vs parameters), one figure per dataset and metric, as PNG and SVG.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through pyplot: no
display is needed and no global figure state leaks between reports (or into the tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..metrics import REGISTRY
from .aggregate import PIXEL_CODECS, curve_name, curve_points
from .axes import Notes, bulk_limits, finish, mark_outside, positive, tidy_ticks

CLASSICAL_CODECS = PIXEL_CODECS
# (x, y, x label, y label); x is the mean of the fitted count, which adaptive methods choose themselves
REPRESENT_PLOTS = (
    ("num_gaussians", "psnr", "number of Gaussians", "PSNR (dB)"),
    ("num_params", "psnr", "stored parameters", "PSNR (dB)"),
)
FORMATS = ("png", "svg")
# one marker shape per curve as well as a colour: points of two curves at one spot stay distinguishable
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def line_style(method: str) -> str:
    """Classical codecs dashed, learned / Gaussian methods solid (the convention of RD figures)."""
    return "--" if method in CLASSICAL_CODECS else "-"


def plot_curves(
    pts: pd.DataFrame,
    x: str,
    y: str,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
) -> Figure:
    """One line per (method, setting) through the mean points, sorted by ``x``.

    The axes cover the bulk of the points; a far outlier is an arrow on the edge with its values, and on
    a log axis a point with x <= 0 is left out; both are said in a note under the axes. A curve with no
    point left to draw is named in the note, not in the legend. Each legend entry says how many images
    its points average.
    """
    fig = Figure(figsize=(8.0, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    notes = Notes()
    data = pts[np.isfinite(pts[x].astype(float)) & np.isfinite(pts[y].astype(float))]
    if logx:
        bad = data[~positive(data[x].to_numpy(dtype=float))]
        for (method, setting), g in bad.groupby(["method", "setting"], sort=True, dropna=False):
            notes.add(
                f"log x axis: {len(g)} point(s) of {curve_name(method, setting)} with {x} <= 0 not shown"
            )
        data = data[positive(data[x].to_numpy(dtype=float))]
    if logx:
        ax.set_xscale("log")
    xlim = bulk_limits(data[x].to_numpy(dtype=float), log=logx)
    ylim = bulk_limits(data[y].to_numpy(dtype=float))
    for i, ((method, setting), g) in enumerate(data.groupby(["method", "setting"], sort=True, dropna=False)):
        g = g.sort_values(x)
        colour = f"C{i % 10}"
        name = curve_name(method, setting)
        xs, ys = g[x].to_numpy(dtype=float), g[y].to_numpy(dtype=float)
        inside = (xs >= xlim.lo) & (xs <= xlim.hi) & (ys >= ylim.lo) & (ys <= ylim.hi)
        n = _images_label(g["n"])
        ax.plot(
            xs,
            ys,
            line_style(str(method)),
            color=colour,
            marker=MARKERS[i % len(MARKERS)],
            markersize=6,
            markerfacecolor="none",  # hollow: two curves' points at one spot both stay visible
            markeredgewidth=1.4,
            label=f"{name} ({n})" if inside.any() else None,
        )
        for line in mark_outside(ax, xs, ys, colour, name, xlim, ylim, (x, y)):
            notes.add(f"beyond the axes (arrow): {line}")
        if not inside.any():
            notes.add(f"{name}: every point lies beyond the axes, so it is not in the legend")
    ax.set_xlim(xlim.lo, xlim.hi)
    ax.set_ylim(ylim.lo, ylim.hi)
    tidy_ticks(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    finish(fig, ax, notes)
    return fig


def _images_label(n: pd.Series) -> str:
    """How many images a curve's points average: ``24 img``, or ``1-24 img`` when they differ."""
    lo, hi = int(n.min()), int(n.max())
    return f"{hi} img" if lo == hi else f"{lo}-{hi} img"


def images_title(n: pd.Series) -> str:
    """``(24 images)``, or ``(1-24 images per point)`` when the points average different counts."""
    lo, hi = int(n.min()), int(n.max())
    if lo == hi:
        return f"({hi} image{'s' if hi != 1 else ''})"
    return f"({lo}-{hi} images per point)"


def save(fig: Figure, stem: Path) -> list[Path]:
    """``stem.png`` and ``stem.svg``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in FORMATS:
        path = stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=150)
        out.append(path)
    return out


def rd_plots(df: pd.DataFrame, out: Path, rate: str = "bpp") -> list[Path]:
    """Compress records: ``rd_<dataset>_<metric>.{png,svg}`` against the rate for every metric the registry
    marks ``rd_plot`` (PSNR, MS-SSIM in dB and LPIPS), labelled with its ``axis_label``.

    Points are means over images of per-image rate and per-image metric at each budget (the papers'
    way); a metric with no values (e.g. LPIPS without weights) makes no figure.
    """
    written: list[Path] = []
    for metric, ylabel in rd_plot_metrics():
        pts = curve_points(df, rate, metric, task="compress")
        for dataset, g in pts.groupby("dataset", sort=True):
            title = f"{dataset} {images_title(g['n'])}"
            fig = plot_curves(g, rate, metric, f"{rate} (bits per pixel)", ylabel, title)
            written += save(fig, out / f"rd_{dataset}_{metric}")
    return written


def rd_plot_metrics() -> list[tuple[str, str]]:
    """``(metric, y label)`` of every RD figure, from the metric registry."""
    return [(m.name, m.axis_label) for m in REGISTRY if m.rd_plot]


def represent_plots(df: pd.DataFrame, out: Path) -> list[Path]:
    """Represent records: ``represent_<dataset>_psnr_vs_<x>.{png,svg}`` with x = Gaussians, parameters
    (log scale: budgets usually span decades)."""
    written: list[Path] = []
    for x, y, xlabel, ylabel in REPRESENT_PLOTS:
        pts = curve_points(df, x, y, task="represent")
        for dataset, g in pts.groupby("dataset", sort=True):
            fig = plot_curves(g, x, y, xlabel, ylabel, f"{dataset} {images_title(g['n'])}", logx=True)
            written += save(fig, out / f"represent_{dataset}_{y}_vs_{x}")
    return written
