"""Axis hygiene shared by every figure of the report: what a reader must be able to trust at a glance.

* a log axis cannot show zero or negative values: those points are dropped *with a note on the figure*
  (drawing them clamped would draw a line from nowhere across the plot);
* one far outlier (a 112 bpp point among points below 4 bpp) must not squeeze every other curve into a
  corner: the axis covers the bulk of the data and each point beyond it is drawn as an arrow on the edge,
  labelled with its value;
* tick labels are plain numbers, with at most a few per axis (no "3x10^0 4x10^0" pile-ups);
* the legend sits outside the axes, so it never hides a curve.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

# a value beyond a gap of GAP times the span of the other values is a far outlier; sought only among at
# least MIN_POINTS values (two points are a line, not a bulk and an outlier)
GAP = 2.0
MIN_POINTS = 3


@dataclass
class Limits:
    """The axis range that shows the bulk of the values, and the values outside it."""

    lo: float
    hi: float
    clipped: bool = False


@dataclass
class Notes:
    """Lines written under a figure: what was left out or drawn at the edge, and why."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Add a line once."""
        if text not in self.lines:
            self.lines.append(text)


def positive(values: np.ndarray) -> np.ndarray:
    """Mask of values a log axis can show (finite and > 0)."""
    return np.isfinite(values) & (values > 0)


def bulk_limits(values: np.ndarray, log: bool = False) -> Limits:
    """An axis range covering every value but far outliers, with a 5 % margin (in log space on log axes).

    A far outlier is a value beyond a gap wider than ``GAP`` times the span of the rest (at least half a
    decade on a log axis, half the median on a linear one): drawing it would leave the rest less than a
    third of the axis. The widest gap between sorted values is tested, twice
    (an outlier may sit at each end), and the side with fewer values is the outlier side. A long but
    evenly sampled curve (JPEG from 0.2 to 3.4 bpp) has no such gap and is shown whole.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if v.size == 0:
        return Limits(1.0, 10.0) if log else Limits(0.0, 1.0)
    t = np.sort(np.log10(v) if log else v)
    kept = t
    for _ in range(2):
        if kept.size < MIN_POINTS:
            break
        gaps = np.diff(kept)
        k = int(np.argmax(gaps))
        low, high = kept[: k + 1], kept[k + 1 :]
        bulk = low if low.size >= high.size else high
        # the bulk's span, but at least half a decade (log) or half its median (linear): a bulk of equal
        # values (six ablations at one budget) must not make a point twice as large an outlier
        floor = 0.5 if log else 0.5 * abs(float(np.median(bulk)))
        if gaps[k] <= GAP * max(float(bulk[-1] - bulk[0]), floor, 1e-12):
            break
        kept = bulk
    lo, hi = float(kept[0]), float(kept[-1])
    # one value (or equal values): a margin of 10 % of it, so LPIPS 0.1 does not get an axis from -0.4
    pad = 0.05 * (hi - lo) if hi > lo else (0.05 if log else 0.1 * abs(hi) or 0.5)
    lo, hi = lo - pad, hi + pad
    if log:
        lo, hi = 10**lo, 10**hi
    return Limits(lo, hi, clipped=kept.size < t.size)


def mark_outside(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    colour: str,
    label: str,
    xlim: Limits,
    ylim: Limits,
    names: tuple[str, str] = ("x", "y"),
) -> list[str]:
    """Draw the points of one curve that lie beyond the axis limits as arrows on the axis edge.

    Each arrow sits where the point would leave the axes and points towards it, tagged with the curve's
    name only (a box with the values would hide data near the edge). Returns one line per point with the
    curve and its coordinates (``names`` are the axes' quantities), for the figure's notes.
    """
    lines = []
    for xi, yi in zip(x, y, strict=True):
        dx = 1 if xi > xlim.hi else -1 if xi < xlim.lo else 0
        dy = 1 if yi > ylim.hi else -1 if yi < ylim.lo else 0
        if not (dx or dy):
            continue
        lines.append(f"{label}: {names[0]}={xi:.4g}, {names[1]}={yi:.4g}")
        # the edge position in axes coordinates (0..1), the other coordinate kept where it is visible
        ex = 1.0 if dx > 0 else 0.0 if dx < 0 else _frac(xi, xlim, ax.get_xscale() == "log")
        ey = 1.0 if dy > 0 else 0.0 if dy < 0 else _frac(yi, ylim, ax.get_yscale() == "log")
        tail = (ex - 0.05 * dx, ey - 0.05 * dy)
        ax.annotate(
            "",
            xy=(ex, ey),
            xytext=tail,
            xycoords="axes fraction",
            arrowprops={"arrowstyle": "-|>", "color": colour, "lw": 1.5},
        )
        ax.annotate(
            label,
            xy=tail,
            xycoords="axes fraction",
            xytext=(-3 * dx, 4 if dy <= 0 else -4),
            textcoords="offset points",
            ha="right" if ex > 0.5 else "left",
            va="bottom" if dy <= 0 else "top",
            fontsize="x-small",
            color=colour,
        )
    return lines


def _frac(v: float, lim: Limits, log: bool) -> float:
    """``v`` as a fraction of the axis range (clamped to it)."""
    if log:
        v, lo, hi = np.log10(max(v, 1e-300)), np.log10(lim.lo), np.log10(lim.hi)
    else:
        lo, hi = lim.lo, lim.hi
    return float(np.clip((v - lo) / (hi - lo) if hi > lo else 0.5, 0.02, 0.98))


def plain_number(v: float, _pos: object = None) -> str:
    """A tick label without scientific notation where a plain number is short (1000, 0.5, 2e+05)."""
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e6:
        return f"{v:.6g}"
    return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def tidy_ticks(ax: Axes) -> None:
    """Readable ticks: plain numbers; on a log axis labels at 1-2-5 steps when it spans under two
    decades and at decades otherwise, never on every minor tick."""
    for axis, scale, (lo, hi) in (
        (ax.xaxis, ax.get_xscale(), ax.get_xlim()),
        (ax.yaxis, ax.get_yscale(), ax.get_ylim()),
    ):
        if scale == "log" and lo > 0 and hi > 0:
            decades = np.log10(hi / lo)
            subs = (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
            if decades < 0.5:  # a narrow log axis: 1-2-5 steps give one tick or none; take ~5 plain ones
                subs = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
            axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
            axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10), numticks=12))
            axis.set_minor_formatter(NullFormatter())
        else:
            axis.set_major_locator(MaxNLocator(nbins=7))
        axis.set_major_formatter(FuncFormatter(plain_number))


def finish(fig: Figure, ax: Axes, notes: Notes) -> None:
    """The legend outside the axes (constrained layout makes room), so it can never cover data, and the
    notes under everything.

    Short labels go to the right of the axes; long ones (a setting such as ``method.init=random ...``)
    go below it, wrapped, because beside it they would squeeze the axes to nothing. Below the axes the
    notes become the legend's title, so the two never overlap.
    """
    handles, labels = ax.get_legend_handles_labels()
    text = "\n".join(notes.lines)
    if handles and max(len(label) for label in labels) > 32:
        wrapped = [textwrap.fill(label, 100, subsequent_indent="    ") for label in labels]
        legend = fig.legend(handles, wrapped, loc="outside lower center", fontsize="x-small", frameon=False,
                            title=text or None, title_fontsize="x-small", alignment="left")  # fmt: skip
        if text:
            legend.get_title().set_color("0.3")
        return
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small", frameon=False)
    if text:
        fig.supxlabel(text, fontsize="x-small", color="0.3", ha="left", x=0.02)
