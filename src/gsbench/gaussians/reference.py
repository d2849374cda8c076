"""Dense brute-force renderer: every Gaussian against every pixel, plain autograd.

The ground truth that tests compare every backend against (in float64, at small sizes). It implements
exactly the semantics written in :mod:`.raster_torch` without tiles, chunks or a hand-written backward.
"""

from __future__ import annotations

import torch

from .params import cov_radius, cov_to_conic
from .raster_torch import ALPHA_MIN


def dense_weights(
    means: torch.Tensor,
    cov: torch.Tensor,
    height: int,
    width: int,
    *,
    cutoff: bool = True,
    legacy_cap: int | None = None,
    tile_size: int = 16,
) -> torch.Tensor:
    """Weights ``w [N, H, W]`` of every Gaussian at every pixel, zero outside its footprint.

    ``legacy_cap`` keeps, per ``tile_size`` tile, only the first ``legacy_cap`` Gaussians (by index)
    whose footprint overlaps the tile: the official GaussianImage kernel's behaviour.
    Memory is ``O(N H W)``: use it at test sizes only.
    """
    conic, valid = cov_to_conic(cov)
    radius = cov_radius(cov, valid)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=means.dtype, device=means.device),
        torch.arange(width, dtype=means.dtype, device=means.device),
        indexing="ij",
    )
    dx = xs[None] - means[:, 0, None, None]  # [N, H, W]
    dy = ys[None] - means[:, 1, None, None]
    a, b, c = (conic[:, i, None, None] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    r = radius[:, None, None]
    box = (dx.abs() <= r) & (dy.abs() <= r) & valid[:, None, None]
    mask = box & (sigma >= 0)
    w = torch.exp(-sigma)
    if cutoff:
        mask &= w >= ALPHA_MIN
    if legacy_cap is not None:
        mask &= _legacy_keep(box, tile_size, legacy_cap)
    return torch.where(mask, w, torch.zeros_like(w))


def render_reference(
    means: torch.Tensor,
    cov: torch.Tensor,
    colors: torch.Tensor,
    height: int,
    width: int,
    *,
    cutoff: bool = True,
    legacy_cap: int | None = None,
    tile_size: int = 16,
) -> torch.Tensor:
    """Render ``[C, H, W]`` from ``means [N, 2]``, packed covariances ``cov [N, 3]`` and ``colors [N, C]``.

    The accumulated sum of :func:`dense_weights` (see it for ``legacy_cap`` and ``tile_size``).
    """
    w = dense_weights(means, cov, height, width, cutoff=cutoff, legacy_cap=legacy_cap, tile_size=tile_size)
    return torch.einsum("nhw,nc->chw", w, colors)


def render_topk_reference(
    means: torch.Tensor,
    cov: torch.Tensor,
    colors: torch.Tensor,
    height: int,
    width: int,
    *,
    k: int = 10,
    eps: float = 1e-10,
    cutoff: bool = True,
    normalise: bool = True,
) -> torch.Tensor:
    """Top-K render ``[C, H, W]`` from ``means [N, 2]``, ``cov [N, 3]``, ``colors [N, C]``.

    Weights masked exactly as :func:`render_reference`, then ``torch.topk`` over the Gaussians per pixel;
    with ``normalise`` the kept weighted sum is divided by (kept weight sum + ``eps``).
    """
    w = dense_weights(means, cov, height, width, cutoff=cutoff)  # [N, H, W]
    top_w, top_i = torch.topk(w, min(k, w.shape[0]), dim=0)  # [K, H, W] (K = 0 without Gaussians)
    num = torch.einsum("khw,khwc->chw", top_w, colors[top_i])
    return num / (top_w.sum(0) + eps) if normalise else num


def _legacy_keep(box: torch.Tensor, tile: int, cap: int) -> torch.Tensor:
    """``[N, H, W]`` bool: pixel kept if its Gaussian is among the first ``cap`` that touch its tile.

    A Gaussian touches a tile when its footprint box ``box [N, H, W]`` overlaps it (what binning tests).
    """
    N, H, W = box.shape
    ty, tx = -(-H // tile), -(-W // tile)
    pad = torch.zeros(N, ty * tile, tx * tile, dtype=torch.bool, device=box.device)
    pad[:, :H, :W] = box
    touches = pad.reshape(N, ty, tile, tx, tile).any(dim=(2, 4))  # [N, ty, tx]
    rank = torch.cumsum(touches.long(), dim=0) - 1
    keep_tile = touches & (rank < cap)
    keep = keep_tile.repeat_interleave(tile, 1).repeat_interleave(tile, 2)[:, :H, :W]
    return keep
