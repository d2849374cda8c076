"""Rasterize-top-K-normalised (Image-GS): per pixel, the K largest weights only, normalised.

``pixel = sum_{n in topK(p)} w_n c_n / (sum_{n in topK(p)} w_n + eps)`` where ``topK(p)`` are the K
Gaussians with the largest weights ``w = exp(-sigma)`` at pixel p, among those whose footprint holds p
(same footprint, positive-definiteness and optional 1/255 cut-off as :mod:`gsbench.kernels.rasterize_sum`).
Gradients flow through the kept Gaussians only (the selection is piecewise constant).

Forward: one program per tile keeps a ``[TILE*TILE, K_PAD]`` list of (weight, id) per pixel and, for
each Gaussian of the tile in index order, replaces the list's minimum when the new weight is strictly
larger (so among equal weights the lower index wins). It stores the kept ids ``[H*W, K]`` and weight
sums ``[H*W]`` for the backward, which walks the tile's Gaussians again in batches, recomputes their
weights, masks those not kept and reduces per Gaussian before one atomic add per (Gaussian, tile).

:func:`gsbench.gaussians.reference.render_topk_reference` is the dense float64 reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import next_pow2
from .binning import Bins
from .rasterize_sum import (
    ALPHA_MIN,
    BLOCK_G,
    NO_CAP,
    _accumulate_grads,
    _tile_setup,
    _tile_weights,
    check_raster_inputs,
)

DEFAULT_K = 10
DEFAULT_EPS = 1e-10


@triton.jit
def _rasterize_topk_fwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, out_ptr, ids_ptr, wsum_ptr,
    height, width, tiles_x, n_ch, cap, K, eps,
    TILE: tl.constexpr, K_PAD: tl.constexpr, C_PAD: tl.constexpr, CUTOFF: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    kk = tl.arange(0, K_PAD)
    dt = out_ptr.dtype.element_ty
    # Empty slots hold -1 (any candidate beats them); padding slots beyond K hold +inf (never the min).
    topw = tl.where(kk[None, :] < K, -1.0, float("inf")) + tl.zeros([TILE * TILE, K_PAD], dtype=dt)
    topi = tl.full([TILE * TILE, K_PAD], -1, dtype=tl.int32)
    for i in range(start, end):
        g = tl.load(gids_ptr + i)
        mx, my = tl.load(means_ptr + g * 2), tl.load(means_ptr + g * 2 + 1)
        A, B, C = tl.load(conic_ptr + g * 3), tl.load(conic_ptr + g * 3 + 1), tl.load(conic_ptr + g * 3 + 2)
        r = tl.load(radius_ptr + g)
        dx, dy = px - mx, py - my
        sigma = 0.5 * (A * dx * dx + C * dy * dy) + B * dx * dy
        ok = (tl.abs(dx) <= r) & (tl.abs(dy) <= r) & (sigma >= 0) & pix_ok
        w = tl.exp(-sigma)
        if CUTOFF:
            ok = ok & (w >= ALPHA_MIN)
        cand = tl.where(ok, w, -1.0)
        low = tl.min(topw, axis=1)
        slot = tl.argmin(topw, axis=1)
        rep = (kk[None, :] == slot[:, None]) & (cand > low)[:, None]
        topw = tl.where(rep, cand[:, None], topw)
        topi = tl.where(rep, g, topi)
    kept = topi >= 0
    wk = tl.where(kept, topw, 0.0)
    wsum = tl.sum(wk, axis=1)
    ch = tl.arange(0, C_PAD)
    col = tl.load(colors_ptr + topi[:, :, None] * n_ch + ch[None, None, :],
                  mask=kept[:, :, None] & (ch[None, None, :] < n_ch), other=0.0)  # fmt: skip
    out = tl.sum(wk[:, :, None] * col, axis=1) / (wsum + eps)[:, None]
    pix = py * width + px
    tl.store(out_ptr + ch[None, :] * (height * width) + pix[:, None], out,
             mask=pix_ok[:, None] & (ch[None, :] < n_ch))  # fmt: skip
    tl.store(ids_ptr + pix[:, None] * K + kk[None, :], topi, mask=pix_ok[:, None] & (kk[None, :] < K))
    tl.store(wsum_ptr + pix, wsum, mask=pix_ok)


@triton.jit
def _rasterize_topk_bwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, out_ptr, ids_ptr, wsum_ptr,
    g_out_ptr, g_means_ptr, g_conic_ptr, g_colors_ptr,
    height, width, tiles_x, n_ch, cap, K, eps,
    TILE: tl.constexpr, BLOCK_G: tl.constexpr, K_PAD: tl.constexpr, C_PAD: tl.constexpr,
    CUTOFF: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    pix = py * width + px
    kk = tl.arange(0, K_PAD)
    ch = tl.arange(0, C_PAD)
    cm = ch[None, :] < n_ch
    img = ch[None, :] * (height * width) + pix[:, None]
    gout = tl.load(g_out_ptr + img, mask=pix_ok[:, None] & cm, other=0.0)
    out = tl.load(out_ptr + img, mask=pix_ok[:, None] & cm, other=0.0)
    inv_d = 1.0 / (tl.load(wsum_ptr + pix, mask=pix_ok, other=0.0) + eps)  # [P]
    go = tl.sum(gout * out, axis=1)  # <g, out> per pixel
    ids = tl.load(
        ids_ptr + pix[:, None] * K + kk[None, :], mask=pix_ok[:, None] & (kk[None, :] < K), other=-1
    )
    for b in range(start, end, BLOCK_G):
        j = b + tl.arange(0, BLOCK_G)
        jm = j < end
        w, dx, dy, A, B, C, g = _tile_weights(
            means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, CUTOFF
        )
        kept = tl.sum((ids[:, :, None] == g[None, None, :]).to(tl.int32), axis=1) > 0  # [P, G]
        w = tl.where(kept & jm[None, :], w, 0.0)
        col = tl.load(colors_ptr + g[:, None] * n_ch + ch[None, :], mask=jm[:, None] & cm, other=0.0)
        d_col = tl.sum((w * inv_d[:, None])[:, :, None] * gout[:, None, :], axis=0)  # [G, C_PAD]
        # d out / d w_n = (c_n - out) / D, so dL/dsigma = -w (<g, c_n> - <g, out>) / D.
        dot = tl.sum(gout[:, None, :] * col[None, :, :], axis=2)  # [P, G]
        gs = -w * (dot - go[:, None]) * inv_d[:, None]
        _accumulate_grads(
            gs, d_col, dx, dy, A, B, C, g, jm, cm, ch, n_ch, g_means_ptr, g_conic_ptr, g_colors_ptr
        )


class RasterizeTopKTriton(torch.autograd.Function):
    """``[C, H, W]`` top-K normalised image; differentiable in means, conic and colours."""

    @staticmethod
    def forward(ctx, means, conic, colors, radius, bins: Bins, height, width, k, eps, cutoff, cap):
        n_ch, dev = colors.shape[1], colors.device
        out = torch.zeros(n_ch, height, width, dtype=colors.dtype, device=dev)
        ids = torch.full((height * width, k), -1, dtype=torch.int32, device=dev)
        wsum = torch.zeros(height * width, dtype=colors.dtype, device=dev)
        scalars = (height, width, bins.tiles_x, n_ch, NO_CAP if cap is None else cap, k, eps)
        meta = dict(TILE=bins.tile_size, K_PAD=next_pow2(k), C_PAD=next_pow2(n_ch), CUTOFF=bool(cutoff))
        if means.shape[0] and n_ch:
            _rasterize_topk_fwd_kernel[(bins.tiles_x * bins.tiles_y,)](
                means, conic, colors, radius, bins.gids, bins.tile_start, out, ids, wsum, *scalars, **meta
            )
        ctx.save_for_backward(means, conic, colors, radius, out, ids, wsum)
        ctx.bins, ctx.scalars, ctx.meta = bins, scalars, meta
        return out

    @staticmethod
    def backward(ctx, g_out):
        means, conic, colors, radius, out, ids, wsum = ctx.saved_tensors
        bins = ctx.bins
        g_means, g_conic, g_colors = (
            torch.zeros_like(means),
            torch.zeros_like(conic),
            torch.zeros_like(colors),
        )
        if means.shape[0] and colors.shape[1]:
            _rasterize_topk_bwd_kernel[(bins.tiles_x * bins.tiles_y,)](
                means, conic, colors, radius, bins.gids, bins.tile_start, out, ids, wsum, g_out.contiguous(),
                g_means, g_conic, g_colors, *ctx.scalars, BLOCK_G=BLOCK_G, **ctx.meta,
            )  # fmt: skip
        return g_means, g_conic, g_colors, *([None] * 8)


def rasterize_topk_triton(
    means: torch.Tensor,
    conic: torch.Tensor,
    colors: torch.Tensor,
    radius: torch.Tensor,
    bins: Bins,
    height: int,
    width: int,
    *,
    k: int = DEFAULT_K,
    eps: float = DEFAULT_EPS,
    cutoff: bool = True,
    legacy_cap: int | None = None,
) -> torch.Tensor:
    """Top-K normalised rasterization; arguments as :func:`.rasterize_sum.rasterize_sum_triton`.

    Args:
        k: Gaussians kept per pixel (Image-GS: 10). eps: added to the weight sum.
    Returns:
        ``[C, H, W]`` image.
    """
    if not 1 <= k <= 64:
        raise ValueError(f"k must be in [1, 64], got {k}")
    check_raster_inputs(_rasterize_topk_fwd_kernel, means, conic, colors, radius, bins, height, width)
    return RasterizeTopKTriton.apply(
        means.contiguous(), conic.contiguous(), colors.contiguous(), radius.detach().contiguous(),
        bins, height, width, int(k), float(eps), cutoff, legacy_cap,
    )  # fmt: skip
