"""RD curves (compress: bpp vs PSNR / MS-SSIM dB / LPIPS) and budget curves (represent: PSNR vs Gaussians
and vs parameters), one figure per dataset and metric, as PNG and SVG.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through pyplot: no
display is needed and no global figure state leaks between reports (or into the tests).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .aggregate import curve_name, curve_points

CLASSICAL_CODECS = ("jpeg", "webp", "avif", "jxl")
# (metric, y label) against the rate
RD_PLOTS = (
    ("psnr", "PSNR (dB)"),
    ("ms_ssim_db", "MS-SSIM (dB)"),
    ("lpips", "LPIPS (lower is better)"),
)
# (x, y, x label, y label); x is the mean of the fitted count, which adaptive methods choose themselves
REPRESENT_PLOTS = (
    ("num_gaussians", "psnr", "number of Gaussians", "PSNR (dB)"),
    ("num_params", "psnr", "stored parameters", "PSNR (dB)"),
)
FORMATS = ("png", "svg")


def line_style(method: str) -> str:
    """Classical codecs dashed, learned / Gaussian methods solid (the convention of RD figures)."""
    return "--" if method in CLASSICAL_CODECS else "-"


def plot_curves(
    pts: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str, logx: bool = False
) -> Figure:
    """One line per (method, setting) through the mean points, sorted by ``x``."""
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (method, setting), g in pts.groupby(["method", "setting"], sort=True, dropna=False):
        g = g.sort_values(x)
        ax.plot(
            g[x], g[y], line_style(str(method)), marker="o", markersize=4, label=curve_name(method, setting)
        )
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


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
    """Compress records: ``rd_<dataset>_<metric>.{png,svg}`` for PSNR, MS-SSIM (dB) and LPIPS vs rate.

    Points are means over images of per-image rate and per-image metric at each budget (the papers'
    way); a metric with no values (e.g. LPIPS without weights) makes no figure.
    """
    written: list[Path] = []
    for metric, ylabel in RD_PLOTS:
        pts = curve_points(df, rate, metric, task="compress")
        for dataset, g in pts.groupby("dataset", sort=True):
            n = int(g["n"].max())
            fig = plot_curves(g, rate, metric, f"{rate} (bits per pixel)", ylabel, f"{dataset} ({n} images)")
            written += save(fig, out / f"rd_{dataset}_{metric}")
    return written


def represent_plots(df: pd.DataFrame, out: Path) -> list[Path]:
    """Represent records: ``represent_<dataset>_psnr_vs_<x>.{png,svg}`` with x = Gaussians, parameters
    (log scale: budgets usually span decades)."""
    written: list[Path] = []
    for x, y, xlabel, ylabel in REPRESENT_PLOTS:
        pts = curve_points(df, x, y, task="represent")
        for dataset, g in pts.groupby("dataset", sort=True):
            n = int(g["n"].max())
            fig = plot_curves(g, x, y, xlabel, ylabel, f"{dataset} ({n} images)", logx=True)
            written += save(fig, out / f"represent_{dataset}_{y}_vs_{x}")
    return written
