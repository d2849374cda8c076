"""Image quality metrics for (reference, render) pairs.

Every metric takes ``ref`` and ``rec`` as 3xHxW float tensors on any device, ``ref`` in [0, 1] and ``rec`` a
raw render that is clamped to [0, 1] first, as the papers evaluate. Higher is better for PSNR/SSIM/MS-SSIM,
lower for LPIPS/FLIP.

=============  ==========================================================================================
``psnr``       10 log10(1/MSE) of the clamped float render; capped at 100 dB (identical images give 100.0)
``psnr_8bit``  the same for the render rounded to 8 bits, round(clamp(rec)*255)/255: what a user sees
``ssim``       pytorch_msssim SSIM, 11-px Gaussian window (sigma 1.5), data range 1
``ms_ssim``    pytorch_msssim MS-SSIM, 5 scales; ``None`` when min(H, W) < 161. Its results also carry
               ``ms_ssim_db`` = -10 log10(1 - ms_ssim) (CompressAI's plotting scale, capped at 100 dB)
``lpips``      LPIPS-Alex v0.1 (plain-torch reimplementation of the official network and weights)
``flip``       mean LDR-FLIP via flip-evaluator; ``None`` when that package does not import
=============  ==========================================================================================

Results are plain floats (finite, so they go to JSON as they are) or ``None``. A metric that cannot be
computed for an input raises :class:`MetricUnavailable`; :func:`compute_metrics_with_notes` turns that into
``None`` and a human-readable note, :func:`compute_metrics` drops the notes. A render holding NaN/inf gives
``None`` for every metric, with a note. A missing LPIPS weight file is not such a case: it raises
``FileNotFoundError`` so that a benchmark does not quietly lose a column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

# The submodules are imported as modules, not their same-named functions: binding e.g. ``lpips`` the function
# here would shadow the submodule, and ``import gsbench.metrics.lpips as m`` would then return the function.
from gsbench.metrics import flip, lpips, psnr, ssim
from gsbench.metrics._common import MetricUnavailable
from gsbench.metrics.lpips import fetch_lpips_alex_weights
from gsbench.metrics.psnr import PSNR_CAP_DB
from gsbench.metrics.ssim import ms_ssim_db

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "PSNR_CAP_DB",
    "MetricFn",
    "MetricUnavailable",
    "compute_metrics",
    "compute_metrics_with_notes",
    "fetch_lpips_alex_weights",
]

#: ``fn(ref, rec) -> float`` with ref/rec 3xHxW; ``lpips`` also takes the keyword ``weights``.
MetricFn = Callable[..., float]

METRICS: dict[str, MetricFn] = {
    "psnr": psnr.psnr,
    "psnr_8bit": psnr.psnr_8bit,
    "ssim": ssim.ssim,
    "ms_ssim": ssim.ms_ssim,
    "lpips": lpips.lpips,
    "flip": flip.flip,
}

DEFAULT_METRICS: tuple[str, ...] = tuple(METRICS)


def compute_metrics_with_notes(
    ref: torch.Tensor,
    rec: torch.Tensor,
    names: Sequence[str] = DEFAULT_METRICS,
    *,
    lpips_weights: str | Path | None = None,
) -> tuple[dict[str, float | None], list[str]]:
    """Compute the named metrics and say why any of them is ``None``.

    Args:
        ref: 3xHxW reference in [0, 1], any device.
        rec: 3xHxW raw render (clamped to [0, 1] by every metric), moved to ``ref``'s device.
        names: keys of :data:`METRICS`, in the order wanted in the result.
        lpips_weights: LPIPS weight file; ``None`` searches as
            :func:`gsbench.metrics.lpips.resolve_lpips_weights` describes.

    Returns:
        ``(values, notes)``: ``values`` maps each name to a float or ``None`` (plus ``"ms_ssim_db"`` right
        after ``"ms_ssim"`` when that is asked for); ``notes`` holds one ``"<name>: <reason>"`` per ``None``.

    Raises:
        ValueError: an unknown metric name, or ref/rec of the wrong shapes.
        FileNotFoundError: LPIPS asked for and no weight file found.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names: {', '.join(METRICS)}")
    values: dict[str, float | None] = {}
    notes: list[str] = []
    for name in dict.fromkeys(names):  # drop repeats, keep order
        kwargs = {"weights": lpips_weights} if name == "lpips" else {}
        try:
            value: float | None = METRICS[name](ref, rec, **kwargs)
        except MetricUnavailable as exc:
            value = None
            notes.append(f"{name}: {exc}")
        values[name] = value
        if name == "ms_ssim":
            values["ms_ssim_db"] = None if value is None else ms_ssim_db(value)
    return values, notes


def compute_metrics(
    ref: torch.Tensor,
    rec: torch.Tensor,
    names: Sequence[str] = DEFAULT_METRICS,
    *,
    lpips_weights: str | Path | None = None,
) -> dict[str, float | None]:
    """:func:`compute_metrics_with_notes` without the notes: ``{name: float | None}`` for 3xHxW ref/rec."""
    values, _ = compute_metrics_with_notes(ref, rec, names, lpips_weights=lpips_weights)
    return values
