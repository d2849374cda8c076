"""PSNR on the clamped float render (the papers' number) and on the 8-bit render (what a user sees)."""

from __future__ import annotations

import math

import torch

from gsbench.metrics._common import prepare_pair
from gsbench.metrics.registry import Metric, register

__all__ = ["PSNR_CAP_DB", "psnr", "psnr_8bit", "psnr_from_mse"]

#: PSNR of identical images is infinite, which JSON cannot hold; every PSNR-like value is capped here.
#: 100 dB is far above anything a lossy representation reaches (8-bit quantisation alone gives ~59 dB).
PSNR_CAP_DB = 100.0


def psnr_from_mse(mse: float) -> float:
    """``10 log10(1 / mse)`` for a peak of 1, capped at :data:`PSNR_CAP_DB` (also for ``mse == 0``)."""
    if mse <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, -10.0 * math.log10(mse))


def _mse(a: torch.Tensor, b: torch.Tensor) -> float:
    # float64 where the device has it: for near-identical images the float32 sum of squares loses digits.
    if a.device.type == "mps":
        return float((a - b).square().mean())
    return float((a.double() - b.double()).square().mean())


def psnr(ref: torch.Tensor, rec: torch.Tensor) -> float:
    """PSNR in dB of the render clamped to [0, 1] against ``ref`` (peak 1), as the papers report it.

    Args:
        ref: 3xHxW reference in [0, 1].
        rec: 3xHxW raw render (clamped here).

    Returns:
        PSNR in dB, capped at :data:`PSNR_CAP_DB` (100 dB) so identical images give 100.0, not inf.
    """
    ref, rec = prepare_pair(ref, rec)
    return psnr_from_mse(_mse(ref, rec))


def psnr_8bit(ref: torch.Tensor, rec: torch.Tensor) -> float:
    """PSNR in dB of the render quantised to 8 bits, ``round(clamp(rec) * 255) / 255``, against ``ref``.

    This is the image a user gets after saving the render as PNG. ``ref`` is used as given (the datasets
    are 8-bit already). Rounding is half-to-even (``torch.round``); exact .5 ties do not occur in practice.

    Args:
        ref: 3xHxW reference in [0, 1].
        rec: 3xHxW raw render.

    Returns:
        PSNR in dB, capped at :data:`PSNR_CAP_DB`.
    """
    ref, rec = prepare_pair(ref, rec)
    return psnr_from_mse(_mse(ref, torch.round(rec * 255.0) / 255.0))


# The two PSNRs every table leads with; only the papers' (float) one goes to CompressAI, plots and BD.
register(
    Metric("psnr", "PSNR", "higher", "dB", compute=psnr, compressai_key="psnr-rgb", order=10,
           headline=True, rd_plot=True, bd=True)
)  # fmt: skip
register(Metric("psnr_8bit", "8-bit PSNR", "higher", "dB", compute=psnr_8bit, order=20))
