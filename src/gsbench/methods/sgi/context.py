"""SGI's context model: a binary hash grid and a two-layer MLP predict, per seed and per attribute
dimension, the mean and scale of a Gaussian, and per attribute group a refinement of the quantisation step.

Quantisation (the paper's Eqs. 7-9, HAC): uniform noise ``U(-Q/2, Q/2)`` in training, rounding at test;
``Q = Q0 (1 + tanh(r))`` with ``r`` from the context. Attribute groups and their base steps ``Q0`` at
full resolution (the code's; at pyramid level ``l`` the scaling and offset steps are ``Q0 / 2^l``):
the feature (``F`` values, ``Q0 = 1``), the seed scaling (4 values in pixels, ``Q0 = 1``) and the
offsets (``2 K`` values, ``Q0 = 0.2``). ``1 + tanh(r)`` is floored at :data:`STEP_FLOOR` so that a
saturated ``tanh`` (exactly -1 in float32 below r = -9) cannot make a step of zero.

Bits (Eqs. 10-12, the code's ``Entropy_gaussian``): ``-log2(Phi((x + Q/2 - mu) / sigma) -
Phi((x - Q/2 - mu) / sigma))`` with ``sigma = max(|raw|, 1e-9)`` and the likelihood at 1e-6; evaluated in log
space on the lower tail so the float64 estimate of the final file is accurate (:func:`gaussian_bits`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .hashgrid import HashGrid, HashGridConfig

GROUPS = ("feature", "scaling", "offset")
STEP_FLOOR = 1e-3
LIKELIHOOD_FLOOR = 1e-6
SCALE_FLOOR = 1e-9
Z_MIN = 1e3


def group_dims(feature_dim: int, k: int) -> tuple[int, int, int]:
    """Values per seed in each group: feature ``F``, scaling 4, offsets ``2 K``."""
    return feature_dim, 4, 2 * k


def two_layer_mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    """Linear - ReLU - Linear (the paper's Appendix A: every MLP of SGI has this shape)."""
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class ContextModel(nn.Module):
    """Hash grid + ``mlp_grid`` (``L F_h -> 2 F -> 2 (F + 4 + 2K) + 3``, the code's widths without its
    unused mixture-probability outputs).

    Args:
        grid: the hash grid layout. feature_dim, k: the seed feature size and Gaussians per seed.
        generator: seeds the grid's initialisation.
    """

    def __init__(
        self, grid: HashGridConfig, feature_dim: int, k: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.grid = HashGrid(grid, generator)
        self.dims = group_dims(feature_dim, k)
        self.hidden = 2 * feature_dim
        self.mlp = two_layer_mlp(grid.output_dim, self.hidden, 2 * sum(self.dims) + 3)

    def forward(self, xy: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per group ``(mean [N, d], scale [N, d], r [N, 1])`` at normalised seed positions ``xy [N, 2]``."""
        return split_outputs(self.mlp(self.grid(xy)), self.dims)


def split_outputs(out: torch.Tensor, dims: tuple[int, int, int]) -> dict:
    """Split the MLP output ``[N, 2 D + 3]`` into per-group (mean, scale, step refinement)."""
    sizes = [dims[0], dims[0], dims[1], dims[1], dims[2], dims[2], 1, 1, 1]
    mf, sf, ms, ss, mo, so, rf, rs, ro = torch.split(out, sizes, dim=-1)
    return {"feature": (mf, sf, rf), "scaling": (ms, ss, rs), "offset": (mo, so, ro)}


def base_steps(q: dict[str, float], level: int) -> dict[str, float]:
    """``Q0`` per group at pyramid level ``level`` (0 = full resolution): spatial steps halve per level."""
    return {
        "feature": float(q["feature"]),
        "scaling": float(q["scaling"]) / 2**level,
        "offset": float(q["offset"]) / 2**level,
    }


def adaptive_step(q0: float, refine: torch.Tensor) -> torch.Tensor:
    """Eq. 9: ``Q0 (1 + tanh(r))`` ``[N, 1]``, the factor floored at :data:`STEP_FLOOR`."""
    return q0 * (1 + torch.tanh(refine)).clamp_min(STEP_FLOOR)


def add_noise(x: torch.Tensor, step: torch.Tensor | float, generator=None) -> torch.Tensor:
    """Eq. 7: ``x + U(-1/2, 1/2) Q`` (training-time quantisation proxy)."""
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 0.5
    return x + noise * step


class LowerBound(torch.autograd.Function):
    """``max(x, bound)``; the gradient passes where ``x >= bound`` or where descent would raise ``x``
    (CompressAI's ``LowerBound``: what the code's ``Low_bound`` means to do, though it zeroes it below)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad * ((x >= ctx.bound) | (grad < 0)).to(grad.dtype), None


def positive_scale(raw: torch.Tensor) -> torch.Tensor:
    """The context's scale output as a standard deviation: ``max(|raw|, 1e-9)``.

    The code clamps the raw output at 1e-9; a negative output then gets no gradient at all and its
    dimension stays at the likelihood floor (~20 bits per value) for good. Mirroring negative outputs is
    the same map for positive ones and lets every dimension learn.
    """
    return raw.abs().clamp_min(SCALE_FLOOR)


def gaussian_bits(
    x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, step: torch.Tensor | float
) -> torch.Tensor:
    """Bits of ``x`` under ``N(mean, scale)`` integrated over the bin of width ``step`` around it.

    The value is the code's ``-log2(max(P, 1e-6))``. ``P`` is computed in log space on the lower tail
    (the Gaussian is symmetric, so only ``|x - mean|`` matters), which keeps it exact far from the mean and
    gives the context model a gradient even where the floor binds (the code's gradient vanishes there,
    and a context that starts far from the data, e.g. scalings of several pixels, never learns them);
    there the attributes themselves get no gradient, as in the code.
    All tensors broadcast to ``x``'s shape ``[N, d]``; returns ``[N, d]`` bits.
    """
    scale = positive_scale(scale)
    floor = math.log(LIKELIHOOD_FLOOR)
    loglik = _log_likelihood(x, mean, scale, step)
    if torch.is_grad_enabled() and x.requires_grad:
        # below the floor only the context learns (the attributes get no gradient there, as in the code)
        below = loglik.detach() < floor
        loglik = torch.where(below, _log_likelihood(x.detach(), mean, scale, step), loglik)
    return -LowerBound.apply(loglik, floor) / math.log(2.0)


def _log_likelihood(x, mean, scale, step) -> torch.Tensor:
    """``log(Phi((step/2 - |x - mean|) / scale) - Phi((-step/2 - |x - mean|) / scale))``, tail-exact."""
    dist = (x - mean).abs()
    # log_ndtr's gradient is garbage far below -1e3 (NaN at ~-1e10, reached when scale sits at 1e-9);
    # the floor binds long before (log_ndtr(-1e3) = -5e5), so clamping only removes those gradients
    upper = torch.special.log_ndtr(((0.5 * step - dist) / scale).clamp_min(-Z_MIN))
    lower = torch.special.log_ndtr(((-0.5 * step - dist) / scale).clamp_min(-Z_MIN))
    # the ratio is capped at 1 - 1e-6: beyond it P < 1e-6 is floored anyway, and log1p(-1) would be -inf
    return upper + torch.log1p(-torch.exp(lower - upper).clamp_max(1 - LIKELIHOOD_FLOOR))


def rate_terms(
    context: dict, values: dict[str, torch.Tensor], q0: dict[str, float], noise: bool = True
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bits of the (noised) seed attributes under the context's distributions.

    Args:
        context: :meth:`ContextModel.forward` for the chosen seeds.
        values: per group ``[N, d]`` attributes (feature, scaling in pixels, flattened offsets).
        q0: base steps of the current level (:func:`base_steps`).
        noise: add the quantisation noise first (training); False evaluates ``values`` as they are.
    Returns:
        ``(bits per value averaged over all values, {group: [N, d] bits})``.
    """
    bits = {}
    for group in GROUPS:
        mean, scale, refine = context[group]
        step = adaptive_step(q0[group], refine)
        x = add_noise(values[group], step) if noise else values[group]
        bits[group] = gaussian_bits(x, mean, scale, step)
    total = sum(b.sum() for b in bits.values())
    count = sum(b.numel() for b in bits.values())
    return total / max(count, 1), bits
