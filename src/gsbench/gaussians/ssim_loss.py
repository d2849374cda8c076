"""SSIM as a training loss (Image-GS's ``L1 + 0.1 (1 - SSIM)``), fast on a CPU.

The same value as ``pytorch_msssim.ssim`` (Gaussian window, sigma 1.5, valid part, K = (0.01, 0.03),
mean over channels and pixels), computed with its formula; only the five window blurs run elsewhere: in
numba on a CPU (:class:`GaussianBlurNumba`, forward and adjoint), where torch's depthwise convolution is
slow, and in torch's convolution otherwise. Three forms, as every kernel here: the kernels
(:mod:`.blur_numba`), the autograd Function (:class:`GaussianBlurNumba`) and the checked public function
(:func:`ssim_loss`); ``pytorch_msssim`` is the reference the tests hold it to.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

SIGMA = 1.5  # pytorch_msssim's default, and the SSIM paper's
K1, K2 = 0.01, 0.03


@cache
def window(size: int, sigma: float = SIGMA) -> torch.Tensor:
    """``[size]`` normalised 1-D Gaussian, float32, as ``pytorch_msssim._fspecial_gauss_1d``."""
    coords = torch.arange(size, dtype=torch.float) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


class GaussianBlurNumba(torch.autograd.Function):
    """``[N, H, W] -> [N, H-k+1, W-k+1]`` separable blur on the CPU; the backward is its adjoint."""

    @staticmethod
    def forward(ctx, x, g):
        from .blur_numba import blur_valid
        from .raster_numba import as_array, set_threads

        set_threads()
        k = g.shape[0]
        out = torch.empty(x.shape[0], x.shape[1] - k + 1, x.shape[2] - k + 1, dtype=x.dtype)
        gg = as_array(g.to(x.dtype))
        blur_valid(as_array(x), gg, out.numpy())
        ctx.g, ctx.shape = gg, x.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        from .blur_numba import blur_valid_adjoint
        from .raster_numba import as_array, set_threads

        set_threads()
        gin = torch.empty(ctx.shape, dtype=grad_out.dtype)
        blur_valid_adjoint(as_array(grad_out), ctx.g.astype(as_array(grad_out).dtype), gin.numpy())
        return gin, None


def blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W] -> [B, C, H-k+1, W-k+1]``: the window ``g`` ``[k]`` along H, then along W."""
    b, c, h, w = x.shape
    flat = x.reshape(b * c, h, w)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        out = GaussianBlurNumba.apply(flat.contiguous(), g)
    else:
        k = g.to(x).view(1, 1, -1)
        out = F.conv2d(flat[:, None], k.view(1, 1, -1, 1))
        out = F.conv2d(out, k.view(1, 1, 1, -1))[:, 0]
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


def ssim_loss(x: torch.Tensor, y: torch.Tensor, win_size: int = 11, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of ``x`` against ``y`` (``[B, C, H, W]``, H and W at least ``win_size``), differentiable
    in ``x``; equal to ``pytorch_msssim.ssim(x, y, data_range, win_size=win_size)`` up to rounding."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim_loss expects two [B, C, H, W] tensors of one shape, got {x.shape}, {y.shape}")
    if min(x.shape[-2:]) < win_size or win_size % 2 == 0:
        size = tuple(x.shape[-2:])
        raise ValueError(f"ssim_loss: an odd window of {win_size} px must fit the {size} image")
    g = window(int(win_size))
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu1, mu2 = blur(x, g), blur(y, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1.pow(2), mu2.pow(2), mu1 * mu2
    sigma1_sq = blur(x * x, g) - mu1_sq
    sigma2_sq = blur(y * y, g) - mu2_sq
    sigma12 = blur(x * y, g) - mu1_mu2
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    ssim_map = ((2 * mu1_mu2 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return torch.flatten(ssim_map, 2).mean(-1).mean()
