"""SSIM and MS-SSIM through ``pytorch_msssim`` (11-px Gaussian window, sigma 1.5, data range 1)."""

from __future__ import annotations

import math

import pytorch_msssim
import torch

from gsbench.metrics._common import MetricUnavailable, full_fp32_convs, prepare_pair
from gsbench.metrics.psnr import PSNR_CAP_DB
from gsbench.metrics.registry import Metric, register

__all__ = ["MS_SSIM_MIN_SIDE", "SSIM_WIN_SIZE", "ms_ssim", "ms_ssim_db", "ssim"]

SSIM_WIN_SIZE = 11
#: pytorch_msssim asserts ``min(H, W) > (win - 1) * 2**4``: after 4 halvings the window must still fit.
MS_SSIM_MIN_SIDE = (SSIM_WIN_SIZE - 1) * 2**4 + 1


def ssim(ref: torch.Tensor, rec: torch.Tensor) -> float:
    """Mean SSIM (Wang et al. 2004) over the valid window positions and the 3 channels.

    Args:
        ref: 3xHxW reference in [0, 1].
        rec: 3xHxW raw render (clamped to [0, 1]).

    Returns:
        SSIM in [-1, 1] (1 for identical images).

    Raises:
        MetricUnavailable: the shorter side is under the 11-px window.
    """
    ref, rec = prepare_pair(ref, rec)
    if min(ref.shape[-2:]) < SSIM_WIN_SIZE:
        raise MetricUnavailable(f"image {tuple(ref.shape[-2:])} is under the {SSIM_WIN_SIZE}-px window")
    with full_fp32_convs(ref.device):
        val = pytorch_msssim.ssim(
            rec[None], ref[None], data_range=1.0, size_average=True, win_size=SSIM_WIN_SIZE
        )
    return float(val)


def ms_ssim(ref: torch.Tensor, rec: torch.Tensor) -> float:
    """MS-SSIM (Wang et al. 2003; 5 scales, the standard weights) as ``pytorch_msssim`` computes it.

    Args:
        ref: 3xHxW reference in [0, 1].
        rec: 3xHxW raw render (clamped to [0, 1]).

    Returns:
        MS-SSIM in [0, 1] (1 for identical images).

    Raises:
        MetricUnavailable: ``min(H, W) < 161``; the 4 downsamplings would shrink the image below the window.
    """
    ref, rec = prepare_pair(ref, rec)
    if min(ref.shape[-2:]) < MS_SSIM_MIN_SIDE:
        raise MetricUnavailable(
            f"MS-SSIM needs the shorter side >= {MS_SSIM_MIN_SIDE} px (5 scales, {SSIM_WIN_SIZE}-px window), "
            f"image is {ref.shape[-2]}x{ref.shape[-1]}"
        )
    with full_fp32_convs(ref.device):
        val = pytorch_msssim.ms_ssim(
            rec[None], ref[None], data_range=1.0, size_average=True, win_size=SSIM_WIN_SIZE
        )
    return float(val)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on CompressAI's dB scale, ``-10 log10(1 - value)``, capped at 100 dB like PSNR."""
    if value >= 1.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, -10.0 * math.log10(1.0 - value))


# SSIM is kept in results.csv but not printed: MS-SSIM says more at the resolutions benchmarked.
register(Metric("ssim", "SSIM", "higher", compute=ssim, order=30, printed=()))
# CompressAI exports the linear MS-SSIM and plots it in dB; BD and our RD plots use the dB scale.
register(
    Metric("ms_ssim", "MS-SSIM", "higher", compute=ms_ssim, compressai_key="ms-ssim-rgb", order=40,
           headline=True)
)  # fmt: skip
register(
    Metric("ms_ssim_db", "MS-SSIM", "higher", "dB", derived_from="ms_ssim", derive=ms_ssim_db,
           rd_plot=True, bd=True)
)  # fmt: skip
