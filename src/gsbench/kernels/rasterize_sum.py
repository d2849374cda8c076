"""Rasterize-sum: ``pixel = sum_n colour_n exp(-sigma_n)`` over the Gaussians binned to the pixel's tile.

Semantics are those of :mod:`gsbench.gaussians.raster_torch` (the PyTorch reference these kernels are
tested against, with :func:`gsbench.gaussians.render_reference`): square footprint ``|d| <= r``, weights
below 1/255 skipped when ``cutoff``, no cap per tile unless ``legacy_cap`` is given.

One program per tile, one pixel per thread (up to 8 warps); it walks the tile's Gaussian range in
batches of ``BLOCK_G`` (so a tile may hold any number of Gaussians) and evaluates a ``[TILE*TILE,
BLOCK_G]`` weight block per batch. Channels are walked one at a time inside a batch, so no ``[P, G, C]``
product is ever live: that product is what made the first version spill. A forward launch writes at most
:data:`MAX_C_PAD` channels (its accumulator is ``[C_PAD, P]``); more channels take several launches.
The backward recomputes the weights tile by tile and reduces each batch over the tile's pixels before
one atomic add per (Gaussian, tile): atomics scale with intersections, not with pixels.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import Launch, check_inputs, kernel, next_pow2, placeholder, run
from .binning import Bins

# A constexpr global: @jit code may read no other kind (the compiler refuses plain globals).
ALPHA_MIN = tl.constexpr(1.0 / 255.0)  # the official kernels' cut-off (raster_torch.ALPHA_MIN)
MAX_C_PAD = 16  # channels per forward launch
NO_CAP = 2**31 - 1
# [pixel, Gaussian] pairs per batch, chosen from the sm_90 register counts (docs/kernels.md): the forward
# at 8 Gaussians per 16x16 batch uses 32-64 registers; the backward 127 at 16.
FWD_PAIRS, BWD_PAIRS = 2048, 4096


def tile_config(tile: int, pairs: int = BWD_PAIRS) -> tuple[int, int]:
    """``(BLOCK_G, num_warps)`` for ``tile x tile`` programs: one pixel per thread up to 8 warps and
    at most ``pairs`` weights per batch, 16 Gaussians at most."""
    p = tile * tile
    return max(1, min(16, pairs // p)), max(1, min(8, p // 32))


@triton.jit
def _tile_weights(means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, cutoff):
    """Weights ``w [P, G]`` (zero outside the footprint), the mask, offsets dx, dy ``[P, G]``, the conic
    A, B, C ``[G]`` and the Gaussian ids ``g [G]`` of the tile entries ``j [G]`` (valid where ``jm``).

    The top-K kernels compare weights computed here in two launches for equality, so both must use this
    one expression."""
    g = tl.load(gids_ptr + j, mask=jm, other=0)
    mx = tl.load(means_ptr + g * 2 + 0, mask=jm, other=0.0)
    my = tl.load(means_ptr + g * 2 + 1, mask=jm, other=0.0)
    A = tl.load(conic_ptr + g * 3 + 0, mask=jm, other=0.0)
    B = tl.load(conic_ptr + g * 3 + 1, mask=jm, other=0.0)
    C = tl.load(conic_ptr + g * 3 + 2, mask=jm, other=0.0)
    r = tl.load(radius_ptr + g, mask=jm, other=0.0)
    dx = px[:, None] - mx[None, :]  # int - float promotes to the float dtype
    dy = py[:, None] - my[None, :]
    sigma = 0.5 * (A[None, :] * dx * dx + C[None, :] * dy * dy) + B[None, :] * dx * dy
    mask = (tl.abs(dx) <= r[None, :]) & (tl.abs(dy) <= r[None, :]) & (sigma >= 0)
    mask = mask & jm[None, :] & pix_ok[:, None]
    w = tl.exp(-sigma)
    mask = mask & ((w >= ALPHA_MIN) | (cutoff == 0))
    w = tl.where(mask, w, 0.0)
    return w, mask, dx, dy, A, B, C, g


@triton.jit
def _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE: tl.constexpr):
    tid = tl.program_id(0)
    p = tl.arange(0, TILE * TILE)
    px = (tid % tiles_x) * TILE + p % TILE
    py = (tid // tiles_x) * TILE + p // TILE
    start = tl.load(tile_start_ptr + tid)
    # legacy cap: the first `cap` by index (written as a count so start + cap cannot overflow int32)
    end = start + tl.minimum(tl.load(tile_start_ptr + tid + 1) - start, cap)
    return px, py, (px < width) & (py < height), start, end


@kernel
def _rasterize_sum_fwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, out_ptr,
    height, width, tiles_x, n_ch, c0, cap, cutoff,
    TILE: tl.constexpr, BLOCK_G: tl.constexpr, C_PAD: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    ch = tl.arange(0, C_PAD)
    n_grp = tl.minimum(n_ch - c0, C_PAD)  # channels c0 .. c0 + n_grp - 1 in this launch
    # [C_PAD, P], pixels along the axis spread over the threads: on sm_90 this layout takes 32-64
    # registers at 16x16 against 48-104 for [P, C_PAD], and 32x32 tiles stop spilling.
    acc = tl.zeros([C_PAD, TILE * TILE], dtype=out_ptr.dtype.element_ty)
    for b in range(start, end, BLOCK_G):
        j = b + tl.arange(0, BLOCK_G)
        jm = j < end
        w, _m, _dx, _dy, _a, _b, _c, g = _tile_weights(
            means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, cutoff
        )
        for c in range(n_grp):
            col = tl.load(colors_ptr + g * n_ch + (c0 + c), mask=jm, other=0.0)  # [G]
            acc += tl.where(ch[:, None] == c, tl.sum(w * col[None, :], axis=1)[None, :], 0.0)
    out = out_ptr + (c0 + ch)[:, None] * (height * width) + (py * width + px)[None, :]
    tl.store(out, acc, mask=pix_ok[None, :] & (ch[:, None] < n_grp))


@triton.jit
def _accumulate_grads(gs, dx, dy, A, B, C, g, jm, g_means_ptr, g_conic_ptr):
    """Reduce ``gs = dL/dsigma [P, G]`` over the tile's pixels into conic and mean gradients and add
    them with one atomic per (Gaussian, tile) and parameter."""
    d_a = tl.sum(0.5 * gs * dx * dx, axis=0)
    d_b = tl.sum(gs * dx * dy, axis=0)
    d_c = tl.sum(0.5 * gs * dy * dy, axis=0)
    d_mx = -tl.sum(gs * (A[None, :] * dx + B[None, :] * dy), axis=0)
    d_my = -tl.sum(gs * (B[None, :] * dx + C[None, :] * dy), axis=0)
    tl.atomic_add(g_conic_ptr + g * 3 + 0, d_a, mask=jm)
    tl.atomic_add(g_conic_ptr + g * 3 + 1, d_b, mask=jm)
    tl.atomic_add(g_conic_ptr + g * 3 + 2, d_c, mask=jm)
    tl.atomic_add(g_means_ptr + g * 2 + 0, d_mx, mask=jm)
    tl.atomic_add(g_means_ptr + g * 2 + 1, d_my, mask=jm)


@kernel
def _rasterize_sum_bwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, g_out_ptr,
    g_means_ptr, g_conic_ptr, g_colors_ptr,
    height, width, tiles_x, n_ch, cap, cutoff,
    TILE: tl.constexpr, BLOCK_G: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    pix = py * width + px
    for b in range(start, end, BLOCK_G):
        j = b + tl.arange(0, BLOCK_G)
        jm = j < end
        w, _m, dx, dy, A, B, C, g = _tile_weights(
            means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, cutoff
        )
        dot = tl.zeros_like(w)  # <dL/dpixel, colour> per (pixel, Gaussian)
        for c in range(n_ch):  # the [P] loads of dL/dpixel hit L1 after the first batch
            gc = tl.load(g_out_ptr + c * (height * width) + pix, mask=pix_ok, other=0.0)
            col = tl.load(colors_ptr + g * n_ch + c, mask=jm, other=0.0)
            dot += gc[:, None] * col[None, :]
            tl.atomic_add(g_colors_ptr + g * n_ch + c, tl.sum(w * gc[:, None], axis=0), mask=jm)
        # dL/dsigma = -w <g, colour>; zero outside the footprint because w is.
        _accumulate_grads(-w * dot, dx, dy, A, B, C, g, jm, g_means_ptr, g_conic_ptr)


def plan_sum_fwd(
    means, conic, colors, radius, bins: Bins, out, height, width, cap, cutoff, c0=0
) -> Launch:
    """The forward launch writing channels ``c0 .. c0 + MAX_C_PAD - 1`` of ``out [C, H, W]``."""
    n_ch = colors.shape[1]
    block_g, warps = tile_config(bins.tile_size, FWD_PAIRS)
    return Launch(
        _rasterize_sum_fwd_kernel, (bins.tiles_x * bins.tiles_y,),
        dict(means_ptr=means, conic_ptr=conic, colors_ptr=colors, radius_ptr=radius, gids_ptr=bins.gids,
             tile_start_ptr=bins.tile_start, out_ptr=out, height=height, width=width, tiles_x=bins.tiles_x,
             n_ch=n_ch, c0=c0, cap=NO_CAP if cap is None else cap, cutoff=int(cutoff)),
        dict(TILE=bins.tile_size, BLOCK_G=block_g, C_PAD=next_pow2(min(n_ch - c0, MAX_C_PAD))), warps,
    )


def plan_sum_bwd(
    means, conic, colors, radius, bins: Bins, g_out, grads, height, width, cap, cutoff
) -> Launch:
    """The backward launch: ``grads = (g_means, g_conic, g_colors)`` accumulate atomically."""
    block_g, warps = tile_config(bins.tile_size)
    return Launch(
        _rasterize_sum_bwd_kernel, (bins.tiles_x * bins.tiles_y,),
        dict(means_ptr=means, conic_ptr=conic, colors_ptr=colors, radius_ptr=radius, gids_ptr=bins.gids,
             tile_start_ptr=bins.tile_start, g_out_ptr=g_out, g_means_ptr=grads[0], g_conic_ptr=grads[1],
             g_colors_ptr=grads[2], height=height, width=width, tiles_x=bins.tiles_x, n_ch=colors.shape[1],
             cap=NO_CAP if cap is None else cap, cutoff=int(cutoff)),
        dict(TILE=bins.tile_size, BLOCK_G=block_g), warps,
    )


def placeholder_bins(tile: int) -> Bins:
    """:class:`Bins` of placeholder tensors (for enumerating launches)."""
    return Bins(placeholder(torch.int32), placeholder(torch.int64), placeholder(torch.int32), tile, 1, 1)


def launch_plans(space) -> list[Launch]:
    """Every launch of this module over ``space`` (an :class:`.aot.OptionSpace`), from placeholders."""
    plans = []
    for dt in space.dtypes:
        f = placeholder(dt)
        for tile in space.tiles:
            bins = placeholder_bins(tile)
            for n_ch in space.channels:
                colors = f.new_empty(1, n_ch)
                for c0 in range(0, n_ch, MAX_C_PAD):
                    plans.append(plan_sum_fwd(f, f, colors, f, bins, f, 1, 1, None, True, c0))
                plans.append(plan_sum_bwd(f, f, colors, f, bins, f, (f, f, f), 1, 1, None, True))
    return plans


class RasterizeSumTriton(torch.autograd.Function):
    """``[C, H, W]`` accumulated sum; differentiable in means, conic and colours."""

    @staticmethod
    def forward(ctx, means, conic, colors, radius, bins: Bins, height, width, cutoff, cap):
        n_ch = colors.shape[1]
        out = torch.zeros(n_ch, height, width, dtype=colors.dtype, device=colors.device)
        if means.shape[0]:
            for c0 in range(0, n_ch, MAX_C_PAD):
                run(plan_sum_fwd(means, conic, colors, radius, bins, out, height, width, cap, cutoff, c0))
        ctx.save_for_backward(means, conic, colors, radius)
        ctx.bins, ctx.args = bins, (height, width, cap, cutoff)
        return out

    @staticmethod
    def backward(ctx, g_out):
        means, conic, colors, radius = ctx.saved_tensors
        grads = (torch.zeros_like(means), torch.zeros_like(conic), torch.zeros_like(colors))
        if means.shape[0] and colors.shape[1]:
            run(plan_sum_bwd(means, conic, colors, radius, ctx.bins, g_out.contiguous(), grads, *ctx.args))
        return *grads, None, None, None, None, None, None


def check_raster_inputs(kernel, means, conic, colors, radius, bins: Bins, height, width) -> None:
    """Shapes, dtypes and devices shared by the rasterizers."""
    n = means.shape[0]
    if means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(f"means must be [N, 2], got {tuple(means.shape)}")
    if conic.shape != (n, 3) or radius.shape != (n,) or colors.ndim != 2 or colors.shape[0] != n:
        raise ValueError(
            f"expected conic [N, 3], radius [N], colors [N, C] with N={n}; got "
            f"{tuple(conic.shape)}, {tuple(radius.shape)}, {tuple(colors.shape)}"
        )
    t = bins.tile_size
    if t & (t - 1) or t < 2 or t > 64:
        raise ValueError(f"tile_size must be a power of two in [2, 64], got {t}")
    if (bins.tiles_x, bins.tiles_y) != (-(-width // t), -(-height // t)):
        raise ValueError("bins were computed for another image size")
    check_inputs(kernel, means=means, conic=conic, colors=colors, radius=radius)
    if bins.gids.device != means.device:
        raise ValueError("bins are on another device")


def rasterize_sum_triton(
    means: torch.Tensor,
    conic: torch.Tensor,
    colors: torch.Tensor,
    radius: torch.Tensor,
    bins: Bins,
    height: int,
    width: int,
    *,
    cutoff: bool = True,
    legacy_cap: int | None = None,
) -> torch.Tensor:
    """Rasterize projected Gaussians by accumulated summation.

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels; pixel (i, j) has its centre at (j, i).
        conic: ``[N, 3]`` packed inverse covariance (from :func:`gsbench.kernels.projection.project_triton`).
        colors: ``[N, C]`` any number of channels.
        radius: ``[N]`` footprint half-widths (0 = skip).
        bins: from :func:`gsbench.kernels.binning.bin_tiles_triton` for this image size.
        cutoff: skip weights below 1/255. legacy_cap: render only the first ``legacy_cap`` Gaussians
            (by index) of each tile (the official kernel: 256 per 16x16 tile).
    Returns:
        ``[C, H, W]`` image (not clamped); all inputs float32 (or all float64) on one device.
    """
    check_raster_inputs(_rasterize_sum_fwd_kernel, means, conic, colors, radius, bins, height, width)
    return RasterizeSumTriton.apply(
        means.contiguous(), conic.contiguous(), colors.contiguous(), radius.detach().contiguous(),
        bins, height, width, cutoff, legacy_cap,
    )  # fmt: skip
