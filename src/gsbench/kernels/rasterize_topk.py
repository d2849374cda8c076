"""Rasterize-top-K-normalised (Image-GS): per pixel, the K largest weights only, normalised.

``pixel = sum_{n in topK(p)} w_n c_n / (sum_{n in topK(p)} w_n + eps)`` where ``topK(p)`` are the K
Gaussians with the largest weights ``w = exp(-sigma)`` at pixel p, among those whose footprint holds p
(same footprint, positive-definiteness and optional 1/255 cut-off as :mod:`gsbench.kernels.rasterize_sum`);
among equal weights the lower index wins. Gradients flow through the kept Gaussians only.

Forward: one program per tile, one pixel per thread, each holding its best K as ``(weight, id)`` in
its own registers (``[K_PAD, P]``: the pixel axis is the one spread over threads, so the per-candidate
minimum over a pixel's slots is thread-local; laid out ``[P, K_PAD]`` the slots were split over 16 lanes
and each candidate cost shuffles: 1816 SASS instructions and 144 registers on sm_90, against 640 and
120). The tile's Gaussians (one shared candidate list, in index order) are scanned one at a time; a
candidate replaces the list's minimum under the order (weight, then lower index first) when its weight
is strictly larger. Colours are gathered one channel at a time at the end.

The kept set is then exactly ``{n : w_n > w_K or (w_n == w_K and n <= n_K)}`` where ``(w_K, n_K)`` is
the list's minimum. The forward stores that threshold (two numbers per pixel) instead of K ids, and the
backward, which walks the tile's Gaussians in batches like the sum's backward, recomputes each weight
with the same expression (:func:`.rasterize_sum._tile_weights`, so bit for bit the same value) and keeps
those above the threshold: no ``[P, K, G]`` membership test and no per-pixel id list.

:func:`gsbench.gaussians.reference.render_topk_reference` is the dense float64 reference.
"""

from __future__ import annotations

import torch
import triton.language as tl

from . import Launch, kernel, next_pow2, placeholder, run
from .binning import Bins
from .rasterize_sum import (
    NO_CAP,
    _accumulate_grads,
    _tile_setup,
    _tile_weights,
    check_raster_inputs,
    placeholder_bins,
    tile_config,
)

BWD_PAIRS = 2048  # 8 Gaussians per 16x16 batch: 122 registers on sm_90, against 221 at 16

DEFAULT_K = 10
DEFAULT_EPS = 1e-10
MAX_K = 64


@kernel
def _rasterize_topk_fwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, out_ptr, wsum_ptr, wk_ptr, gk_ptr,
    height, width, tiles_x, n_ch, cap, cutoff, K, eps,
    TILE: tl.constexpr, K_PAD: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    kk = tl.arange(0, K_PAD)
    dt = out_ptr.dtype.element_ty
    # The lists are [K_PAD, P]: pixels along the fast axis spread over the threads, so each thread owns
    # its pixel's K slots and the per-candidate min / max over them need no cross-thread shuffles.
    # Empty slots: weight -1 (any candidate beats it) and distinct negative ids -1, -2, ... so the
    # minimum is always one slot; padding slots beyond K hold +inf (never the minimum).
    topw = tl.where(kk[:, None] < K, -1.0, float("inf")) + tl.zeros([K_PAD, TILE * TILE], dtype=dt)
    topi = (-1 - kk)[:, None] + tl.zeros([K_PAD, TILE * TILE], dtype=tl.int32)
    for i in range(start, end):
        j = i + tl.arange(0, 1)
        w, ok, _dx, _dy, _a, _b, _c, g = _tile_weights(
            means_ptr, conic_ptr, radius_ptr, gids_ptr, j, j < end, px, py, pix_ok, cutoff
        )
        cand = tl.sum(tl.where(ok, w, -1.0), axis=1)  # [P]; -1 where the Gaussian is no candidate
        low = tl.min(topw, axis=0)
        # the minimum under (weight, lower index first): among the lowest weights, the highest id
        last = tl.max(tl.where(topw == low[None, :], topi, -K_PAD - 1), axis=0)
        rep = (topi == last[None, :]) & (cand > low)[None, :]
        topw = tl.where(rep, cand[None, :], topw)
        topi = tl.where(rep, g[:, None], topi)
    kept = topi >= 0
    wk = tl.where(kept, topw, 0.0)
    wsum = tl.sum(wk, axis=0)
    pix = py * width + px
    for c in range(n_ch):
        col = tl.load(colors_ptr + topi * n_ch + c, mask=kept, other=0.0)  # [K_PAD, P] gather
        tl.store(out_ptr + c * (height * width) + pix, tl.sum(wk * col, axis=0) / (wsum + eps), mask=pix_ok)
    low = tl.min(topw, axis=0)  # -1 when fewer than K candidates: every candidate is kept
    last = tl.max(tl.where(topw == low[None, :], topi, -K_PAD - 1), axis=0)
    tl.store(wsum_ptr + pix, wsum, mask=pix_ok)
    tl.store(wk_ptr + pix, low, mask=pix_ok)
    tl.store(gk_ptr + pix, last, mask=pix_ok)


@kernel
def _rasterize_topk_bwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, out_ptr, wsum_ptr, wk_ptr, gk_ptr,
    g_out_ptr, g_means_ptr, g_conic_ptr, g_colors_ptr,
    height, width, tiles_x, n_ch, cap, cutoff, eps,
    TILE: tl.constexpr, BLOCK_G: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    pix = py * width + px
    hw = height * width
    go = tl.zeros([TILE * TILE], dtype=out_ptr.dtype.element_ty)  # <dL/dpixel, pixel>
    for c in range(n_ch):
        go += tl.load(g_out_ptr + c * hw + pix, mask=pix_ok, other=0.0) * tl.load(
            out_ptr + c * hw + pix, mask=pix_ok, other=0.0
        )
    inv_d = 1.0 / (tl.load(wsum_ptr + pix, mask=pix_ok, other=0.0) + eps)
    w_k = tl.load(wk_ptr + pix, mask=pix_ok, other=0.0)[:, None]
    g_k = tl.load(gk_ptr + pix, mask=pix_ok, other=-1)[:, None]
    for b in range(start, end, BLOCK_G):
        j = b + tl.arange(0, BLOCK_G)
        jm = j < end
        w, ok, dx, dy, A, B, C, g = _tile_weights(
            means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, cutoff
        )
        kept = ok & ((w > w_k) | ((w == w_k) & (g[None, :] <= g_k)))
        wn = tl.where(kept, w, 0.0) * inv_d[:, None]  # d pixel / d colour_n
        dot = tl.zeros_like(wn)
        for c in range(n_ch):
            gc = tl.load(g_out_ptr + c * hw + pix, mask=pix_ok, other=0.0)
            col = tl.load(colors_ptr + g * n_ch + c, mask=jm, other=0.0)
            dot += gc[:, None] * col[None, :]
            tl.atomic_add(g_colors_ptr + g * n_ch + c, tl.sum(wn * gc[:, None], axis=0), mask=jm)
        # d pixel / d w_n = (c_n - pixel) / D, so dL/dsigma = -w (<g, c_n> - <g, pixel>) / D.
        _accumulate_grads(-wn * (dot - go[:, None]), dx, dy, A, B, C, g, jm, g_means_ptr, g_conic_ptr)


def plan_topk_fwd(
    means, conic, colors, radius, bins: Bins, outs, height, width, cap, cutoff, k, eps
) -> Launch:
    """The forward launch; ``outs = (out [C, H, W], wsum [H*W], w_k [H*W], n_k [H*W] int32)``."""
    _, warps = tile_config(bins.tile_size)
    return Launch(
        _rasterize_topk_fwd_kernel, (bins.tiles_x * bins.tiles_y,),
        dict(means_ptr=means, conic_ptr=conic, colors_ptr=colors, radius_ptr=radius, gids_ptr=bins.gids,
             tile_start_ptr=bins.tile_start, out_ptr=outs[0], wsum_ptr=outs[1], wk_ptr=outs[2],
             gk_ptr=outs[3],
             height=height, width=width, tiles_x=bins.tiles_x, n_ch=colors.shape[1],
             cap=NO_CAP if cap is None else cap, cutoff=int(cutoff), K=k, eps=eps),
        dict(TILE=bins.tile_size, K_PAD=next_pow2(k)), warps,
    )


def plan_topk_bwd(
    means, conic, colors, radius, bins: Bins, saved, g_out, grads, height, width, cap, cutoff, eps
) -> Launch:
    """The backward launch; ``saved`` = the forward's ``outs``, ``grads = (g_means, g_conic, g_colors)``."""
    block_g, warps = tile_config(bins.tile_size, BWD_PAIRS)
    return Launch(
        _rasterize_topk_bwd_kernel, (bins.tiles_x * bins.tiles_y,),
        dict(means_ptr=means, conic_ptr=conic, colors_ptr=colors, radius_ptr=radius, gids_ptr=bins.gids,
             tile_start_ptr=bins.tile_start, out_ptr=saved[0], wsum_ptr=saved[1], wk_ptr=saved[2],
             gk_ptr=saved[3], g_out_ptr=g_out, g_means_ptr=grads[0], g_conic_ptr=grads[1],
             g_colors_ptr=grads[2], height=height, width=width, tiles_x=bins.tiles_x, n_ch=colors.shape[1],
             cap=NO_CAP if cap is None else cap, cutoff=int(cutoff), eps=eps),
        dict(TILE=bins.tile_size, BLOCK_G=block_g), warps,
    )


def launch_plans(space) -> list[Launch]:
    """Every launch of this module over ``space`` (an :class:`.aot.OptionSpace`), from placeholders."""
    plans = []
    for dt in space.dtypes:
        f, i32 = placeholder(dt), placeholder(torch.int32)
        outs = (f, f, f, i32)
        for tile in space.tiles:
            bins = placeholder_bins(tile)
            for n_ch in space.channels:
                colors = f.new_empty(1, n_ch)
                for k in space.ks:
                    plans.append(plan_topk_fwd(f, f, colors, f, bins, outs, 1, 1, None, True, k, DEFAULT_EPS))
                grads = (f, f, f)
                bwd = plan_topk_bwd(f, f, colors, f, bins, outs, f, grads, 1, 1, None, True, DEFAULT_EPS)
                plans.append(bwd)
    return plans


class RasterizeTopKTriton(torch.autograd.Function):
    """``[C, H, W]`` top-K normalised image; differentiable in means, conic and colours."""

    @staticmethod
    def forward(ctx, means, conic, colors, radius, bins: Bins, height, width, k, eps, cutoff, cap):
        n_ch, dev, dt = colors.shape[1], colors.device, colors.dtype
        outs = (
            torch.zeros(n_ch, height, width, dtype=dt, device=dev),
            torch.zeros(height * width, dtype=dt, device=dev),  # kept weight sum
            torch.full((height * width,), -1.0, dtype=dt, device=dev),  # threshold weight w_K
            torch.full((height * width,), -1, dtype=torch.int32, device=dev),  # threshold id n_K
        )
        if means.shape[0] and n_ch:
            run(plan_topk_fwd(means, conic, colors, radius, bins, outs, height, width, cap, cutoff, k, eps))
        ctx.save_for_backward(means, conic, colors, radius, *outs)
        ctx.bins, ctx.args = bins, (height, width, cap, cutoff, eps)
        return outs[0]

    @staticmethod
    def backward(ctx, g_out):
        means, conic, colors, radius, *saved = ctx.saved_tensors
        grads = (torch.zeros_like(means), torch.zeros_like(conic), torch.zeros_like(colors))
        if means.shape[0] and colors.shape[1]:
            g_out = g_out.contiguous()
            run(plan_topk_bwd(means, conic, colors, radius, ctx.bins, saved, g_out, grads, *ctx.args))
        return *grads, *([None] * 8)


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
        k: Gaussians kept per pixel (Image-GS: 10), 1..:data:`MAX_K`. eps: added to the weight sum.
    Returns:
        ``[C, H, W]`` image.
    """
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    check_raster_inputs(_rasterize_topk_fwd_kernel, means, conic, colors, radius, bins, height, width)
    return RasterizeTopKTriton.apply(
        means.contiguous(), conic.contiguous(), colors.contiguous(), radius.detach().contiguous(),
        bins, height, width, int(k), float(eps), cutoff, legacy_cap,
    )  # fmt: skip
