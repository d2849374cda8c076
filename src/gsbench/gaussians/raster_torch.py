"""The PyTorch rasterizer: tile binning plus an accumulated-summation kernel with a hand-written backward.

Semantics (shared by every backend and by the dense float64 reference in :mod:`.reference`):

* pixel ``(row i, col j)`` has its centre at ``(x, y) = (j, i)`` (integer coordinates, as the official
  GaussianImage kernels);
* Gaussian ``n`` touches the pixels inside its square footprint ``|x - mx| <= r_n`` and ``|y - my| <= r_n``
  with ``r_n = ceil(3 sqrt(lambda_max))``; degenerate covariances (not positive definite) touch nothing;
* its weight there is ``w = exp(-sigma)``, ``sigma = 0.5 d^T Sigma^-1 d``; with ``cutoff`` on, weights
  below 1/255 are skipped (the official kernels' cut-off);
* ``pixel = sum_n colour_n * w_n``: no sorting, no transmittance, and **no cap on Gaussians per tile**.

The footprint does not depend on the tile size, so tiles are only a work partition here; the one
exception is ``legacy_cap``, which reproduces the official kernel's bug of rendering only the first 256
Gaussians (by index) of each 16x16 tile.

Work is chunked over (Gaussian, tile) intersections and the backward recomputes weights chunk by
chunk, so memory stays bounded by ``chunk_pixels`` whatever the number of Gaussians.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ALPHA_MIN = 1.0 / 255.0  # the official kernels skip contributions below this weight


@dataclass(frozen=True)
class TileBins:
    """(Gaussian, tile) intersections; every tensor is ``[I]`` (int64)."""

    gid: torch.Tensor
    tile_x: torch.Tensor
    tile_y: torch.Tensor
    tile_size: int
    tiles_x: int
    tiles_y: int


def bin_gaussians(
    means: torch.Tensor,
    radius: torch.Tensor,
    height: int,
    width: int,
    tile_size: int = 16,
    legacy_cap: int | None = None,
) -> TileBins:
    """List the tiles each Gaussian's footprint overlaps.

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels.
        radius: ``[N]`` footprint half-widths in pixels (0 = not rendered).
        height, width: image size in pixels.
        tile_size: tile edge in pixels.
        legacy_cap: keep only the first ``legacy_cap`` Gaussians (by index) of each tile, or all if None.
    Returns:
        :class:`TileBins` ordered by Gaussian index.
    """
    dev = means.device
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    with torch.no_grad():
        mx, my = means[:, 0].detach(), means[:, 1].detach()
        r = radius.detach().to(mx.dtype)
        # Pixels run 0..W-1: a Gaussian whose footprint misses that range, or that is not finite, is dropped.
        inside = (r > 0) & (mx + r >= 0) & (mx - r <= width - 1) & (my + r >= 0) & (my - r <= height - 1)
        inside &= torch.isfinite(mx) & torch.isfinite(my)
        x0 = torch.clamp(torch.ceil(mx - r), min=0).nan_to_num(0).long() // tile_size
        x1 = torch.clamp(torch.floor(mx + r), max=width - 1).nan_to_num(0).long() // tile_size
        y0 = torch.clamp(torch.ceil(my - r), min=0).nan_to_num(0).long() // tile_size
        y1 = torch.clamp(torch.floor(my + r), max=height - 1).nan_to_num(0).long() // tile_size
        nx = torch.where(inside, x1 - x0 + 1, torch.zeros_like(x0)).clamp(min=0)
        ny = torch.where(inside, y1 - y0 + 1, torch.zeros_like(y0)).clamp(min=0)
        counts = nx * ny
        gid = torch.repeat_interleave(torch.arange(means.shape[0], device=dev), counts)
        start = torch.cumsum(counts, 0) - counts
        k = torch.arange(gid.numel(), device=dev) - start[gid]
        tile_x = x0[gid] + k % nx[gid].clamp(min=1)
        tile_y = y0[gid] + k // nx[gid].clamp(min=1)
        if legacy_cap is not None and gid.numel() > 0:
            tile_id = tile_y * tiles_x + tile_x
            order = torch.sort(tile_id, stable=True).indices  # stable: Gaussian index order within a tile
            sorted_ids = tile_id[order]
            first = torch.searchsorted(sorted_ids, sorted_ids, right=False)
            rank = torch.empty_like(order)
            rank[order] = torch.arange(order.numel(), device=dev) - first
            keep = rank < legacy_cap
            gid, tile_x, tile_y = gid[keep], tile_x[keep], tile_y[keep]
    return TileBins(gid, tile_x, tile_y, tile_size, tiles_x, tiles_y)


def _chunk_weights(means, conic, radius, bins, lo, hi, height, width, cutoff):
    """Weights of intersections ``lo:hi`` on their tiles.

    Offsets are kept separable (``dx [n, 1, T]``, ``dy [n, T, 1]``) so that only the few ops that
    need it run at full ``[n, T, T]`` size: the torch backend is bound by elementwise passes on a CPU.

    Returns:
        gid ``[n]``, tile row index ``[n]`` into the padded tile grid, w ``[n, T, T]``, dx, dy, conic terms.
    """
    T = bins.tile_size
    gid = bins.gid[lo:hi]
    ar = torch.arange(T, device=means.device)
    px = bins.tile_x[lo:hi, None] * T + ar  # [n, T]
    py = bins.tile_y[lo:hi, None] * T + ar
    mean = means[gid]
    dx = (px.to(means.dtype) - mean[:, 0:1])[:, None, :]  # [n, 1, T]
    dy = (py.to(means.dtype) - mean[:, 1:2])[:, :, None]  # [n, T, 1]
    k = conic[gid]
    a, b, c = k[:, 0, None, None], k[:, 1, None, None], k[:, 2, None, None]
    sigma = (0.5 * a * dx * dx + 0.5 * c * dy * dy) + (b * dx) * dy
    r = radius[gid][:, None, None]
    inside = ((dx.abs() <= r) & (px[:, None, :] < width)) & ((dy.abs() <= r) & (py[:, :, None] < height))
    w = torch.exp(-sigma)
    keep = inside & (sigma >= 0)
    if cutoff:
        keep &= w >= ALPHA_MIN
    w = torch.where(keep, w, torch.zeros((), dtype=w.dtype, device=w.device))
    tile = bins.tile_y[lo:hi] * bins.tiles_x + bins.tile_x[lo:hi]
    return gid, tile, w, dx, dy, (a, b, c)


def _chunks(bins: TileBins, chunk_pixels: int):
    step = max(1, chunk_pixels // (bins.tile_size * bins.tile_size))
    n = bins.gid.numel()
    return ((lo, min(lo + step, n)) for lo in range(0, n, step))


def _tiles_to_image(tiles: torch.Tensor, bins: TileBins, height: int, width: int) -> torch.Tensor:
    """``[tiles_y * tiles_x, T, T, C]`` -> ``[C, H, W]`` (cropping the padding)."""
    T, C = bins.tile_size, tiles.shape[-1]
    img = tiles.reshape(bins.tiles_y, bins.tiles_x, T, T, C).permute(4, 0, 2, 1, 3)
    return img.reshape(C, bins.tiles_y * T, bins.tiles_x * T)[:, :height, :width]


def _image_to_tiles(img: torch.Tensor, bins: TileBins) -> torch.Tensor:
    """``[C, H, W]`` -> zero-padded ``[tiles_y * tiles_x, T * T, C]``."""
    T, (C, H, W) = bins.tile_size, img.shape
    pad = img.new_zeros(C, bins.tiles_y * T, bins.tiles_x * T)
    pad[:, :H, :W] = img
    tiles = pad.reshape(C, bins.tiles_y, T, bins.tiles_x, T).permute(1, 3, 2, 4, 0)
    return tiles.reshape(bins.tiles_y * bins.tiles_x, T * T, C)


class RasterizeSumTorch(torch.autograd.Function):
    """Accumulated summation ``img[p] = sum_n colour_n w_n(p)`` with a chunked, recomputing backward.

    Per intersection the tile's ``T x T`` pixels are one row, so scatters and gathers move whole rows
    (``index_add_`` over tiles) and the colour products are batched matrix products.
    """

    @staticmethod
    def forward(ctx, means, conic, colors, radius, bins, height, width, cutoff, chunk_pixels):
        C, TT = colors.shape[1], bins.tile_size**2
        tiles = torch.zeros(bins.tiles_y * bins.tiles_x, TT * C, dtype=colors.dtype, device=colors.device)
        for lo, hi in _chunks(bins, chunk_pixels):
            gid, tile, w, *_ = _chunk_weights(means, conic, radius, bins, lo, hi, height, width, cutoff)
            vals = w.reshape(-1, TT, 1) * colors[gid][:, None, :]  # [n, TT, C]
            tiles.index_add_(0, tile, vals.reshape(-1, TT * C))
        ctx.save_for_backward(means, conic, colors, radius)
        ctx.bins, ctx.hw, ctx.cutoff, ctx.chunk_pixels = bins, (height, width), cutoff, chunk_pixels
        return _tiles_to_image(tiles.reshape(-1, bins.tile_size, bins.tile_size, C), bins, height, width)

    @staticmethod
    def backward(ctx, grad_out):
        means, conic, colors, radius = ctx.saved_tensors
        (height, width), bins = ctx.hw, ctx.bins
        T = bins.tile_size
        g_tiles = _image_to_tiles(grad_out.to(colors.dtype), bins)  # [tiles, TT, C]
        d_means, d_conic, d_colors = (
            torch.zeros_like(means),
            torch.zeros_like(conic),
            torch.zeros_like(colors),
        )
        for lo, hi in _chunks(bins, ctx.chunk_pixels):
            gid, tile, w, dx, dy, (a, b, c) = _chunk_weights(
                means, conic, radius, bins, lo, hi, height, width, ctx.cutoff
            )
            g = g_tiles[tile]  # [n, TT, C]
            w_row = w.reshape(-1, 1, T * T)
            d_colors.index_add_(0, gid, torch.bmm(w_row, g)[:, 0])
            # dL/dsigma = -w <g, colour>; zero outside the footprint because w is.
            gs = (-w_row[:, 0] * torch.bmm(g, colors[gid][:, :, None])[..., 0]).reshape(-1, T, T)
            sx, sy = gs.sum(1), gs.sum(2)  # [n, T]: summed over rows (per column u), over columns (per row v)
            dxv, dyv = dx[:, 0, :], dy[:, :, 0]
            s_dx, s_dy = (sx * dxv).sum(1), (sy * dyv).sum(1)
            s_dxdx, s_dydy = (sx * dxv * dxv).sum(1), (sy * dyv * dyv).sum(1)
            s_dxdy = (torch.bmm(gs, dxv[:, :, None])[..., 0] * dyv).sum(1)
            a, b, c = a.reshape(-1), b.reshape(-1), c.reshape(-1)
            d_conic.index_add_(0, gid, torch.stack([0.5 * s_dxdx, s_dxdy, 0.5 * s_dydy], dim=-1))
            d_means.index_add_(0, gid, torch.stack([-(a * s_dx + b * s_dy), -(b * s_dx + c * s_dy)], dim=-1))
        return d_means, d_conic, d_colors, None, None, None, None, None, None


def rasterize_sum_torch(
    means: torch.Tensor,
    conic: torch.Tensor,
    colors: torch.Tensor,
    radius: torch.Tensor,
    height: int,
    width: int,
    *,
    tile_size: int = 16,
    cutoff: bool = True,
    legacy_cap: int | None = None,
    chunk_pixels: int = 1 << 21,
) -> torch.Tensor:
    """Rasterize projected Gaussians by accumulated summation (differentiable in means, conic, colours).

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels.
        conic: ``[N, 3]`` packed inverse covariance (zeros for degenerate Gaussians).
        colors: ``[N, C]`` any number of channels.
        radius: ``[N]`` footprint half-widths (0 = skip).
        height, width: output size.
        tile_size: work partition; results do not depend on it unless ``legacy_cap`` is set.
        cutoff: skip weights below 1/255.
        legacy_cap: render only the first ``legacy_cap`` Gaussians of each tile (the official bug: 256).
        chunk_pixels: pixel evaluations per chunk (memory bound).
    Returns:
        ``[C, H, W]`` image, not clamped.
    """
    bins = bin_gaussians(means, radius, height, width, tile_size, legacy_cap)
    return RasterizeSumTorch.apply(means, conic, colors, radius, bins, height, width, cutoff, chunk_pixels)
