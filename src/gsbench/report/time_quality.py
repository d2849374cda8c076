"""Time-to-quality figure: PSNR against wall seconds, one colour per method, on the images all methods share.

Where a record's times come from, per method:

- ``instant_gi``: ``method_info["checkpoints"]`` and its timed ``history`` (measured, init included).
- methods whose ``method_info["history"]`` entries carry ``seconds``: those.
- otherwise (``gi`` today): ``history`` steps converted with the record's ``fit_seconds``, assuming every
  step costs the same (true of GaussianImage up to the growth of its Gaussians); drawn dashed and
  labelled "time estimated".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .axes import Notes, finish, positive, tidy_ticks


def time_to_quality_series(record: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(seconds [K], psnr [K], measured)`` of one record, sorted by time; empty arrays if it has none.

    ``measured`` is False when the times were estimated from steps and ``fit_seconds``.
    """
    info = record.get("method_info") or {}
    marks = info.get("checkpoints") or []
    if marks:  # the checkpoints, filled in with the timed log between them
        logged = [h for h in info.get("history") or [] if "seconds" in h and "psnr" in h]
        pts = sorted({(float(m["seconds"]), float(m["psnr"])) for m in [*marks, *logged]})
        measured = True
    else:
        hist = [h for h in info.get("history") or [] if "psnr" in h]
        if hist and all("seconds" in h for h in hist):
            pts, measured = [(float(h["seconds"]), float(h["psnr"])) for h in hist], True
        elif hist and record.get("fit_seconds"):
            per_step = float(record["fit_seconds"]) / max(float(hist[-1]["step"]), 1.0)
            pts, measured = [(per_step * float(h["step"]), float(h["psnr"])) for h in hist], False
        else:
            pts, measured = [], True
        final = (record.get("metrics") or {}).get("psnr")
        if pts and final is not None and record.get("fit_seconds"):
            end = (
                float(record["fit_seconds"]),
                float(final),
            )  # the scored end state replaces a log at its time
            pts = [*pts[:-1], end] if pts[-1][0] >= end[0] else [*pts, end]
    arr = np.array(sorted(pts), dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1], measured


def _load(records: Iterable[Mapping[str, Any] | str | Path]) -> list[Mapping[str, Any]]:
    out = []
    for rec in records:
        if isinstance(rec, (str, Path)):
            rec = json.loads(Path(rec).read_text())
        if rec.get("status", "ok") == "ok":
            out.append(rec)
    return out


def time_to_quality_plot(
    records: Iterable[Mapping[str, Any] | str | Path], out_path: str | Path, title: str | None = None
) -> dict[str, Any]:
    """Draw PSNR (dB) against wall seconds (log axis) for every method in ``records`` and save it.

    Args:
        records: record dicts (or paths to record JSON files); failed ones are skipped. With several
            methods only the images every method has are drawn ("on the same images").
        out_path: the figure file (its suffix picks the format: .png, .pdf, .svg).
        title: figure title (default: the dataset names).
    Returns:
        ``{"path", "images", "methods": {method: {"seconds": grid, "psnr": mean curve, "measured"}}}``;
        the mean curve is the images' PSNR interpolated on a common log-spaced grid over the span every
        image of that method covers.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    recs = _load(records)
    by_method: dict[str, dict[str, Mapping[str, Any]]] = {}
    for rec in recs:
        by_method.setdefault(str(rec.get("method")), {})[str(rec.get("image"))] = rec
    images = set.intersection(*(set(v) for v in by_method.values())) if by_method else set()
    fig = Figure(figsize=(8.0, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xscale("log")
    notes = Notes()
    summary: dict[str, Any] = {"path": str(out_path), "images": sorted(images), "methods": {}}
    for i, (method, per_image) in enumerate(sorted(by_method.items())):
        colour = f"C{i % 10}"
        series = [time_to_quality_series(per_image[name]) for name in sorted(images)]
        series = [_positive_times(s, method, notes) for s in series]
        series = [s for s in series if len(s[0]) > 0]
        if not series:
            continue
        measured = all(s[2] for s in series)
        style = "-" if measured else "--"
        for t, p, _ in series:
            ax.plot(t, p, style, color=colour, alpha=0.25, linewidth=0.8)
        lo = max(t[0] for t, _, _ in series)
        hi = min(t[-1] for t, _, _ in series)
        grid = np.geomspace(lo, hi, 50) if hi > lo else np.array([lo])
        mean = np.mean([np.interp(grid, t, p) for t, p, _ in series], axis=0)
        label = f"{method} (mean of {len(series)})" + ("" if measured else ", time estimated")
        ax.plot(
            grid, mean, style, color=colour, linewidth=2, label=label, marker="o" if len(grid) == 1 else None
        )
        summary["methods"][method] = {"seconds": grid.tolist(), "psnr": mean.tolist(), "measured": measured}
    for mark in (2, 5):
        ax.axvline(mark, color="0.7", linewidth=0.8, linestyle=":")
    ax.relim()
    ax.autoscale_view()
    tidy_ticks(ax)
    ax.set_xlabel("wall time (s, fit start to state; instant_gi includes its network)")
    ax.set_ylabel("PSNR (dB)")
    datasets = sorted({str(r.get("dataset")) for r in recs})
    n = len(images)
    ax.set_title(title or f"time to quality: {', '.join(datasets)} ({n} image{'s' if n != 1 else ''})")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    finish(fig, ax, notes)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=150)
    return summary


def _positive_times(
    series: tuple[np.ndarray, np.ndarray, bool], method: str, notes: Notes
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Drop states at t <= 0 (a log axis cannot show them; clamping would draw a line from nowhere)."""
    t, p, measured = series
    keep = positive(t)
    if not keep.all():
        notes.add(f"log time axis: states of {method} at 0 s not shown")
    return t[keep], p[keep], measured
