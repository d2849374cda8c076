"""Rasterize-sum: ``pixel = sum_n colour_n exp(-sigma_n)`` over the Gaussians binned to the pixel's tile.

Semantics are those of :mod:`gsbench.gaussians.raster_torch` (the PyTorch reference these kernels are
tested against, with :func:`gsbench.gaussians.render_reference`): square footprint ``|d| <= r``, weights
below 1/255 skipped when ``cutoff``, no cap per tile unless ``legacy_cap`` is given.

One program per tile; it walks the tile's Gaussian range in batches of ``BLOCK_G`` (so a tile may hold
any number of Gaussians) and evaluates a ``[TILE*TILE, BLOCK_G]`` weight block per batch. Colours have
any channel count ``C``: the channel axis is a constexpr ``C_PAD`` (next power of two) with a mask.
The backward recomputes the weights tile by tile and reduces each batch over the tile's pixels before
one atomic add per (Gaussian, tile): atomics scale with intersections, not with pixels.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import check_inputs, next_pow2
from .binning import Bins

ALPHA_MIN = 1.0 / 255.0  # the official kernels' cut-off (raster_torch.ALPHA_MIN)
BLOCK_G = 16  # Gaussians per batch: [256, 16, C_PAD] intermediates stay in registers on a GPU
NO_CAP = 2**31 - 1


@triton.jit
def _tile_weights(means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, CUTOFF: tl.constexpr):
    """Weights ``w [P, G]`` (zero outside the footprint), offsets dx, dy, conic A, B, C ``[G]``, gids."""
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
    if CUTOFF:
        mask = mask & (w >= ALPHA_MIN)
    w = tl.where(mask, w, 0.0)
    return w, dx, dy, A, B, C, g


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


@triton.jit
def _rasterize_sum_fwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, out_ptr,
    height, width, tiles_x, n_ch, cap,
    TILE: tl.constexpr, BLOCK_G: tl.constexpr, C_PAD: tl.constexpr, CUTOFF: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    ch = tl.arange(0, C_PAD)
    acc = tl.zeros([TILE * TILE, C_PAD], dtype=out_ptr.dtype.element_ty)
    for b in range(start, end, BLOCK_G):
        j = b + tl.arange(0, BLOCK_G)
        jm = j < end
        w, _dx, _dy, _a, _b, _c, g = _tile_weights(
            means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, CUTOFF
        )
        col = tl.load(colors_ptr + g[:, None] * n_ch + ch[None, :], mask=jm[:, None] & (ch[None, :] < n_ch),
                      other=0.0)  # fmt: skip
        acc += tl.sum(w[:, :, None] * col[None, :, :], axis=1)
    out = out_ptr + ch[None, :] * (height * width) + (py * width + px)[:, None]
    tl.store(out, acc, mask=pix_ok[:, None] & (ch[None, :] < n_ch))


@triton.jit
def _accumulate_grads(
    gs, d_col, dx, dy, A, B, C, g, jm, cm, ch, n_ch, g_means_ptr, g_conic_ptr, g_colors_ptr
):
    """Reduce ``gs = dL/dsigma [P, G]`` over the tile's pixels into conic and mean gradients, then add
    them and the colour gradient ``d_col [G, C_PAD]`` with one atomic per (Gaussian, tile)."""
    d_a = tl.sum(0.5 * gs * dx * dx, axis=0)
    d_b = tl.sum(gs * dx * dy, axis=0)
    d_c = tl.sum(0.5 * gs * dy * dy, axis=0)
    d_mx = -tl.sum(gs * (A[None, :] * dx + B[None, :] * dy), axis=0)
    d_my = -tl.sum(gs * (B[None, :] * dx + C[None, :] * dy), axis=0)
    tl.atomic_add(g_colors_ptr + g[:, None] * n_ch + ch[None, :], d_col, mask=jm[:, None] & cm)
    tl.atomic_add(g_conic_ptr + g * 3 + 0, d_a, mask=jm)
    tl.atomic_add(g_conic_ptr + g * 3 + 1, d_b, mask=jm)
    tl.atomic_add(g_conic_ptr + g * 3 + 2, d_c, mask=jm)
    tl.atomic_add(g_means_ptr + g * 2 + 0, d_mx, mask=jm)
    tl.atomic_add(g_means_ptr + g * 2 + 1, d_my, mask=jm)


@triton.jit
def _rasterize_sum_bwd_kernel(
    means_ptr, conic_ptr, colors_ptr, radius_ptr, gids_ptr, tile_start_ptr, g_out_ptr,
    g_means_ptr, g_conic_ptr, g_colors_ptr,
    height, width, tiles_x, n_ch, cap,
    TILE: tl.constexpr, BLOCK_G: tl.constexpr, C_PAD: tl.constexpr, CUTOFF: tl.constexpr,
):  # fmt: skip
    px, py, pix_ok, start, end = _tile_setup(tile_start_ptr, height, width, tiles_x, cap, TILE)
    ch = tl.arange(0, C_PAD)
    cm = ch[None, :] < n_ch
    gout = tl.load(g_out_ptr + ch[None, :] * (height * width) + (py * width + px)[:, None],
                   mask=pix_ok[:, None] & cm, other=0.0)  # fmt: skip
    for b in range(start, end, BLOCK_G):
        j = b + tl.arange(0, BLOCK_G)
        jm = j < end
        w, dx, dy, A, B, C, g = _tile_weights(
            means_ptr, conic_ptr, radius_ptr, gids_ptr, j, jm, px, py, pix_ok, CUTOFF
        )
        col = tl.load(colors_ptr + g[:, None] * n_ch + ch[None, :], mask=jm[:, None] & cm, other=0.0)
        d_col = tl.sum(w[:, :, None] * gout[:, None, :], axis=0)  # [G, C_PAD]
        # dL/dsigma = -w <g, colour>; zero outside the footprint because w is.
        gs = -w * tl.sum(gout[:, None, :] * col[None, :, :], axis=2)  # [P, G]
        _accumulate_grads(
            gs, d_col, dx, dy, A, B, C, g, jm, cm, ch, n_ch, g_means_ptr, g_conic_ptr, g_colors_ptr
        )


def _launch_args(bins: Bins, height, width, n_ch, cap, cutoff):
    return dict(
        grid=(bins.tiles_x * bins.tiles_y,),
        scalars=(height, width, bins.tiles_x, n_ch, NO_CAP if cap is None else cap),
        meta=dict(TILE=bins.tile_size, BLOCK_G=BLOCK_G, C_PAD=next_pow2(n_ch), CUTOFF=bool(cutoff)),
    )


class RasterizeSumTriton(torch.autograd.Function):
    """``[C, H, W]`` accumulated sum; differentiable in means, conic and colours."""

    @staticmethod
    def forward(ctx, means, conic, colors, radius, bins: Bins, height, width, cutoff, cap):
        n_ch = colors.shape[1]
        out = torch.zeros(n_ch, height, width, dtype=colors.dtype, device=colors.device)
        a = _launch_args(bins, height, width, n_ch, cap, cutoff)
        if means.shape[0] and n_ch:
            _rasterize_sum_fwd_kernel[a["grid"]](
                means, conic, colors, radius, bins.gids, bins.tile_start, out, *a["scalars"], **a["meta"]
            )
        ctx.save_for_backward(means, conic, colors, radius)
        ctx.bins, ctx.args = bins, (height, width, cap, cutoff)
        return out

    @staticmethod
    def backward(ctx, g_out):
        means, conic, colors, radius = ctx.saved_tensors
        height, width, cap, cutoff = ctx.args
        g_means, g_conic, g_colors = (
            torch.zeros_like(means),
            torch.zeros_like(conic),
            torch.zeros_like(colors),
        )
        a = _launch_args(ctx.bins, height, width, colors.shape[1], cap, cutoff)
        if means.shape[0] and colors.shape[1]:
            _rasterize_sum_bwd_kernel[a["grid"]](
                means, conic, colors, radius, ctx.bins.gids, ctx.bins.tile_start, g_out.contiguous(),
                g_means, g_conic, g_colors, *a["scalars"], **a["meta"],
            )  # fmt: skip
        return g_means, g_conic, g_colors, None, None, None, None, None, None


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
