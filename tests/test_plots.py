"""Every plot type of the report from one small fixed set of records, including a zero budget, a huge
rate and a run whose points are all non-positive: the axes show the bulk, every legend entry has a
visible point, outliers are marked, and log-axis tick labels stay few and plain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gsbench.report.aggregate import curve_points, records_frame
from gsbench.report.axes import bulk_limits, plain_number
from gsbench.report.plots import plot_curves, rd_plots, represent_plots


def _rec(method: str, image: str, budget: int, task: str, psnr: float, **extra) -> dict:
    return {
        "record_version": 1, "status": "ok", "method": method, "dataset": "kodak", "image": image,
        "budget": budget, "seed": 1, "task": task, "config_hash": f"{method}{budget}",
        "config": {"method": {"name": method}},
        "metrics": {"psnr": psnr, "ms_ssim_db": psnr / 2, "lpips": 0.1},
        "num_gaussians": 0 if method == "jpeg" else budget, "num_params": 8 * budget,
        "budget_name": "quality" if method == "jpeg" else "gaussians",
        # timings; JPEG's "render" is the copy older records timed, which the report must not show
        "render": {"render_fps": 3.0e6 if method == "jpeg" else 1000.0 + budget / 100},
        **({"decode": {"decode_fps": 200.0 + budget}} if task == "compress" else {}), **extra,
    }  # fmt: skip


def fixed_records() -> list[dict]:
    """JPEG at 5 qualities (0.2..3.4 bpp), gi at 3 rates, one sgi point at 112 bpp, represent runs
    with a 0-Gaussian failure mode (num_gaussians 0) and a 70k-Gaussian point."""
    recs = []
    for q, bpp, p in ((5, 0.22, 23.9), (25, 0.6, 29.0), (50, 0.9, 31.5), (75, 1.4, 33.6), (95, 3.4, 40.6)):
        for i in range(2):
            recs.append(_rec("jpeg", f"im{i}", q, "compress", p + i, bpp=bpp, bpp_payload=bpp))
    for b, bpp, p in ((1000, 0.3, 25.0), (5000, 0.8, 28.0), (10000, 1.5, 30.0)):
        recs += [_rec("gi", f"im{i}", b, "compress", p + i, bpp=bpp, bpp_payload=0.9 * bpp) for i in range(2)]
    recs += [_rec("sgi", f"im{i}", 50, "compress", 45.0, bpp=112.3, bpp_payload=100.0) for i in range(2)]
    for b, p in ((0, 12.0), (2000, 24.0), (10000, 29.0), (70000, 38.0)):
        recs += [_rec("gi", f"im{i}", b, "represent", p) for i in range(2)]
    recs += [_rec("zero", f"im{i}", 0, "represent", 10.0) for i in range(2)]  # only x = 0: nothing drawable
    return recs


def visible(fig: Figure) -> dict[str, int]:
    """Per legend entry, how many of its line's points lie inside the axes' limits."""
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    out = {}
    for legend in fig.legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            line = (
                next(ln for ln in ax.get_lines() if ln.get_label() == text.get_text())
                if isinstance(handle, Line2D)
                else None
            )
            xs, ys = (np.asarray(v, dtype=float) for v in line.get_data())
            out[text.get_text()] = int(((xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)).sum())
    return out


def _annotations(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts if t.get_text()]


def test_rd_plot_keeps_bulk_and_marks_outlier():
    df = records_frame(fixed_records())
    pts = curve_points(df, "bpp", "psnr", task="compress")
    fig = plot_curves(pts, "bpp", "psnr", "bpp", "PSNR (dB)", "kodak")
    x0, x1 = fig.axes[0].get_xlim()
    assert x0 < 0.22 and 3.4 < x1 < 5.0  # the bulk, not 0..112
    seen = visible(fig)
    assert set(seen) == {"gi (2 img)", "jpeg (2 img)"} and all(v > 0 for v in seen.values())
    # the outlier is an arrow on the edge tagged with its curve, its values in the note
    assert "sgi" in _annotations(fig)
    assert "beyond the axes (arrow): sgi: bpp=112.3, psnr=45" in fig._supxlabel.get_text()


def test_log_axis_skips_non_positive_with_a_note():
    df = records_frame(fixed_records())
    pts = curve_points(df, "num_gaussians", "psnr", task="represent")
    fig = plot_curves(pts, "num_gaussians", "psnr", "Gaussians", "PSNR (dB)", "kodak", logx=True)
    ax = fig.axes[0]
    x0, x1 = ax.get_xlim()
    assert x0 > 0 and 1000 < x0 < 2000 and 70000 < x1 < 1e5
    assert visible(fig) == {"gi (2 img)": 3}  # "zero" has no drawable point: not in the legend
    note = fig._supxlabel.get_text()
    assert "1 point(s) of gi with num_gaussians <= 0" in note and "zero with num_gaussians <= 0" in note
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and x0 <= t.get_position()[0] <= x1]
    assert 2 <= len(labels) <= 8 and not any("times" in s or "^" in s for s in labels), labels


def test_narrow_log_axis_has_plain_ticks():
    pts = pd.DataFrame({"method": "gi", "setting": "", "x": [2.5, 3.0, 4.5], "y": [20.0, 22.0, 23.0],
                        "n": 3, "dataset": "kodak", "budget": [1, 2, 3]})  # fmt: skip
    fig = plot_curves(pts, "x", "y", "seconds", "PSNR", "t", logx=True)
    fig.canvas.draw()
    ax = fig.axes[0]
    x0, x1 = ax.get_xlim()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text() and x0 <= t.get_position()[0] <= x1]
    assert labels and all(s.replace(".", "").isdigit() for s in labels), labels
    assert not [t for t in ax.get_xticklabels(minor=True) if t.get_text()]  # no minor-tick labels


def test_every_report_plot_renders(tmp_path):
    df = records_frame(fixed_records())
    paths = rd_plots(df, tmp_path) + represent_plots(df, tmp_path)
    names = sorted(p.name for p in paths if p.suffix == ".png")
    assert names == sorted(
        [f"rd_kodak_{m}.png" for m in ("psnr", "ms_ssim_db", "lpips")]
        + [f"represent_kodak_psnr_vs_{x}.png" for x in ("num_gaussians", "num_params")]
    )
    assert all(p.stat().st_size > 5000 for p in paths)


@pytest.mark.parametrize(
    ("values", "log", "lo", "hi"),
    [
        ([0.2, 0.5, 1.0, 2.0, 3.4, 112.0], False, 0.0, 5.0),
        ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], False, 0.85, 1.15),
        ([0.1], False, 0.085, 0.115),
        ([1e3, 1e4, 7e4], True, 500, 1.2e5),
    ],
)
def test_bulk_limits(values, log, lo, hi):
    lim = bulk_limits(np.array(values), log=log)
    assert lo <= lim.lo and lim.hi <= hi


def test_plain_number():
    values = (0, 0.5, 3, 1000, 2e5, 3e6, 1e-4)
    assert [plain_number(v) for v in values] == ["0", "0.5", "3", "1000", "200000", "3e6", "1e-4"]


def test_an_evenly_sampled_long_curve_is_not_an_outlier():
    jpeg = np.array(
        [0.22, 0.32, 0.42, 0.5, 0.59, 0.66, 0.73, 0.79, 0.85, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6, 1.9, 2.35, 3.39]
    )
    lim = bulk_limits(jpeg)
    assert lim.hi > 3.39 and lim.lo < 0.22 and not lim.clipped
    lim = bulk_limits(np.append(jpeg, 112.3))
    assert 3.39 < lim.hi < 4 and lim.clipped
