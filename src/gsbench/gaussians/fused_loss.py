"""``mse(clamp(render, 0, 1), target)`` and its gradient in one pass over the pixels.

Once the rasterizer is compiled, the clamp, the squared error, the mean and their backward (seven
element-wise passes over ``C x H x W`` in torch) are a fifth of a GaussianImage step on a CPU. Here the
forward computes the loss and the gradient image together; the backward only scales that gradient.

:func:`clamped_mse` picks the numba kernel for CPU float tensors when numba is installed and falls back
to the torch composite otherwise; both give the same values (up to the summation order of the mean).
"""

from __future__ import annotations

import importlib.util
from functools import cache

import torch
import torch.nn.functional as F


class ClampedMSENumba(torch.autograd.Function):
    """Loss and gradient image in the forward; the backward scales the stored gradient."""

    @staticmethod
    def forward(ctx, raw, target):
        from .loss_numba import clamped_se
        from .raster_numba import as_array, set_threads

        set_threads()
        r = as_array(raw)
        rows = r.reshape(-1, r.shape[-1])
        grad = torch.empty_like(raw, memory_format=torch.contiguous_format)
        g = grad.numpy().reshape(rows.shape)
        total = clamped_se(rows, as_array(target.to(raw.dtype)).reshape(rows.shape), g, 2.0 / raw.numel())
        ctx.save_for_backward(grad)
        return raw.new_tensor(total / raw.numel())

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None


@cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


def clamped_mse(raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean((clamp(raw, 0, 1) - target)^2)``, differentiable in ``raw``.

    Args:
        raw: ``[C, H, W]`` (any shape) unclamped render.
        target: same shape, the ground truth (not differentiated).
    Returns:
        Scalar loss in ``raw``'s dtype.
    """
    fused = (
        raw.device.type == "cpu"
        and raw.dtype in (torch.float32, torch.float64)
        and raw.shape == target.shape
        and raw.numel() > 0
        and not target.requires_grad
        and _numba_installed()
    )
    if not fused:
        return F.mse_loss(raw.clamp(0, 1), target)
    return ClampedMSENumba.apply(raw, target.detach())
