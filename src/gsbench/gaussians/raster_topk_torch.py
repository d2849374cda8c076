"""The PyTorch top-K rasterizer (Image-GS): per pixel the K largest weights only, optionally normalised.

``pixel = sum_{n in topK(p)} w_n c_n / (sum_{n in topK(p)} w_n + eps)`` (``normalise=True``), or the plain
sum of the same K terms (``normalise=False``). ``topK(p)`` are the K Gaussians with the largest weights
``w = exp(-sigma)`` at pixel p among those whose footprint holds p, with the footprint, positive-definiteness
and optional 1/255 cut-off of :mod:`.raster_torch` (the semantics of the dense reference
:func:`.reference.render_topk_reference`). Gradients flow through the kept Gaussians only.

Work is chunked over tiles: each tile's candidate list (the Gaussians binned to it by
:func:`.raster_torch.bin_gaussians`) is evaluated at the tile's pixels as ``[tiles, T, T, candidates]``
and ``torch.topk`` picks each pixel's K; tiles are processed in decreasing candidate count so the padding
of a chunk stays small, and a chunk holds at most ``chunk_pixels`` evaluations. Only the kept ids and
weights (``[tiles, T*T, K]``) are stored for the backward, which recomputes the offsets chunk by chunk:
memory is ``O(K H W)`` plus one chunk, never ``O(N H W)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .raster_torch import ALPHA_MIN, _image_to_tiles, _tiles_to_image, bin_gaussians

PAD_RATIO = 0.6  # a chunk's tiles have candidate counts within this factor of its largest


@dataclass(frozen=True)
class TileLists:
    """Per-tile candidate lists: tile ``t`` owns ``gid[start[t] : start[t] + count[t]]`` (index order)."""

    gid: torch.Tensor
    start: torch.Tensor
    count: torch.Tensor
    tile_size: int
    tiles_x: int
    tiles_y: int

    @property
    def num_tiles(self) -> int:
        return self.tiles_x * self.tiles_y


def tile_lists(
    means: torch.Tensor, radius: torch.Tensor, height: int, width: int, tile_size: int
) -> TileLists:
    """Bin the Gaussians to tiles and group the intersections by tile (stable: Gaussian order inside)."""
    bins = bin_gaussians(means, radius, height, width, tile_size)
    n_tiles = bins.tiles_x * bins.tiles_y
    tile = bins.tile_y * bins.tiles_x + bins.tile_x
    order = torch.sort(tile, stable=True).indices
    count = torch.bincount(tile, minlength=n_tiles)
    start = torch.cumsum(count, 0) - count
    return TileLists(bins.gid[order], start, count, tile_size, bins.tiles_x, bins.tiles_y)


def _tile_chunks(lists: TileLists, per_item: int, chunk_pixels: int, by_count: bool):
    """Non-empty tiles in chunks of at most ``chunk_pixels`` evaluations.

    ``by_count``: tiles sorted by decreasing candidate count, a chunk's cost is ``tiles x max count x
    per_item``; otherwise every tile costs ``per_item``.
    """
    tiles = torch.nonzero(lists.count > 0).reshape(-1)
    if tiles.numel() == 0:
        return
    if not by_count:
        step = max(1, chunk_pixels // per_item)
        for lo in range(0, tiles.numel(), step):
            yield tiles[lo : lo + step]
        return
    counts = lists.count[tiles]
    order = torch.sort(counts, descending=True, stable=True).indices
    tiles, counts = tiles[order], counts[order]
    neg = -counts.double()
    # chunk boundaries: the size limit, and wherever the count falls below PAD_RATIO of the chunk's
    # first (largest) count, so padding never more than ~doubles a chunk's work
    lo, n = 0, tiles.numel()
    while lo < n:
        first = int(counts[lo])
        step = max(1, chunk_pixels // (first * per_item))
        small = int(torch.searchsorted(neg, -PAD_RATIO * first, right=False))  # first count <= ratio
        hi = min(lo + step, max(small, lo + 1), n)
        yield tiles[lo:hi]
        lo = hi


def _pixel_coords(tiles: torch.Tensor, lists: TileLists, dtype: torch.dtype):
    """Pixel x, y ``[nt, T]`` of the tiles' columns and rows (integers as ``dtype``)."""
    T = lists.tile_size
    ar = torch.arange(T, device=tiles.device)
    px = (tiles % lists.tiles_x)[:, None] * T + ar
    py = (tiles // lists.tiles_x)[:, None] * T + ar
    return px, py


def _select(means, conic, radius, lists: TileLists, tiles, height, width, k, cutoff, tile_footprint):
    """Kept ids ``[nt, T*T, min(k, candidates)]`` (-1 = none) and weights (0 = none) of ``tiles``.

    ``tile_footprint``: every Gaussian binned to a tile is a candidate at all of its pixels (the official
    Image-GS kernel) instead of only at the pixels of its own footprint box.
    """
    T = lists.tile_size
    nt = tiles.numel()
    cnt = lists.count[tiles]
    cmax = int(cnt.max())
    j = torch.arange(cmax, device=tiles.device)
    has = j[None, :] < cnt[:, None]  # [nt, cmax]
    idx = (lists.start[tiles][:, None] + j[None, :]).clamp(max=max(lists.gid.numel() - 1, 0))
    gid = torch.where(has, lists.gid[idx], torch.zeros_like(idx))
    px, py = _pixel_coords(tiles, lists, means.dtype)
    mean = means[gid]  # [nt, cmax, 2]
    # layout [nt, row, col, candidate]: topk runs over the contiguous last dimension
    dx = px[:, None, :, None].to(means.dtype) - mean[:, None, None, :, 0]  # [nt, 1, T, cmax]
    dy = py[:, :, None, None].to(means.dtype) - mean[:, None, None, :, 1]  # [nt, T, 1, cmax]
    q = conic[gid]
    a, b, c = (q[:, None, None, :, i] for i in range(3))
    # separable terms first: only three passes run at the full [nt, T, T, cmax] size
    sigma = (0.5 * a * dx * dx + 0.5 * c * dy * dy) + (b * dx) * dy
    r = radius[gid][:, None, None, :]
    ok = (px < width)[:, None, :, None] & (py < height)[:, :, None, None]
    if not tile_footprint:
        ok = ok & ((dx.abs() <= r) & (dy.abs() <= r))
    ok = ok & (sigma >= 0) & has[:, None, None, :]
    w = torch.exp(-sigma)
    if cutoff:
        ok = ok & (w >= ALPHA_MIN)
    w = torch.where(ok, w, torch.full((), -1.0, dtype=w.dtype, device=w.device)).reshape(nt, T * T, cmax)
    kk = min(k, cmax)
    top_w, top_j = torch.topk(w, kk, dim=-1)  # [nt, TT, kk]
    kept = top_w >= 0
    ids = torch.gather(gid[:, None, :].expand(nt, T * T, cmax), 2, top_j)
    ids = torch.where(kept, ids, torch.full_like(ids, -1))
    top_w = torch.where(kept, top_w, torch.zeros_like(top_w))
    return ids, top_w  # [nt, TT, min(k, cmax)]


# One tiling for both rasterizers: TileLists has the same tile_size / tiles_y / tiles_x as TileBins.
_to_image = _tiles_to_image
_to_tiles = _image_to_tiles


class RasterizeTopKTorch(torch.autograd.Function):
    """Top-K (normalised) rasterization with a chunked backward that recomputes offsets from kept ids."""

    @staticmethod
    def forward(ctx, means, conic, colors, radius, lists, height, width, k, normalise, eps, rules, chunk):
        TT, C = lists.tile_size**2, colors.shape[1]
        ids_all = torch.full((lists.num_tiles, TT, k), -1, dtype=torch.int32, device=means.device)
        w_all = torch.zeros(lists.num_tiles, TT, k, dtype=colors.dtype, device=means.device)
        out = torch.zeros(lists.num_tiles, TT, C, dtype=colors.dtype, device=means.device)
        for tiles in _tile_chunks(lists, TT, chunk, by_count=True):
            ids, w = _select(means, conic, radius, lists, tiles, height, width, k, *rules)
            col = colors.index_select(0, ids.clamp(min=0).reshape(-1)).reshape(*ids.shape, C)
            num = (w[..., None] * col).sum(2)
            out[tiles] = num / (w.sum(2, keepdim=True) + eps) if normalise else num
            kk = ids.shape[-1]
            ids_all[tiles, :, :kk], w_all[tiles, :, :kk] = ids.to(torch.int32), w
        ctx.save_for_backward(means, conic, colors, ids_all, w_all, out)
        ctx.lists, ctx.normalise, ctx.eps, ctx.chunk = lists, normalise, eps, chunk
        return _to_image(out, lists, height, width)

    @staticmethod
    def backward(ctx, grad_out):
        means, conic, colors, ids_all, w_all, out_all = ctx.saved_tensors
        lists = ctx.lists
        T, k, C = lists.tile_size, ids_all.shape[-1], colors.shape[1]
        TT = T * T
        g_all = _to_tiles(grad_out.to(colors.dtype), lists).reshape(-1, C)  # [tiles * TT, C]
        out_flat = out_all.reshape(-1, C)
        # one gather and one scatter per chunk: (mean x, mean y, conic a, b, c, colour...) per Gaussian
        packed = torch.cat([means, conic, colors], dim=1)
        d_packed = torch.zeros_like(packed)
        for tiles in _tile_chunks(lists, TT * k, ctx.chunk, by_count=False):
            ids = ids_all[tiles].reshape(-1)  # [nt * TT * k]
            w_pix = w_all[tiles]
            sel = torch.nonzero(ids >= 0).reshape(-1)  # only the kept (pixel, Gaussian) pairs
            gid = ids.index_select(0, sel).long()
            w = w_pix.reshape(-1).index_select(0, sel)
            q = torch.div(sel, k, rounding_mode="floor")  # the pair's pixel in the chunk, [nt * TT]
            # per-pixel tables of the chunk, gathered per pair (cheaper than integer division per pair)
            px, py = _pixel_coords(tiles, lists, means.dtype)
            px = px[:, None, :].expand(-1, T, T).reshape(-1).index_select(0, q).to(means.dtype)
            py = py[:, :, None].expand(-1, T, T).reshape(-1).index_select(0, q).to(means.dtype)
            row = (tiles[:, None] * TT + torch.arange(TT, device=tiles.device)).reshape(-1).index_select(0, q)
            g = g_all.index_select(0, row)  # [M, C]
            p = packed.index_select(0, gid)
            dot = (p[:, 5:] * g).sum(-1)  # <g, c_n>
            if ctx.normalise:
                inv = (1.0 / (w_pix.sum(2) + ctx.eps)).reshape(-1).index_select(0, q)
                d_col = (w * inv)[:, None] * g
                go = (g * out_flat.index_select(0, row)).sum(-1)  # <g, out>
                gs = -w * (dot - go) * inv  # dL/dsigma: d out / d w_n = (c_n - out) / D
            else:
                d_col = w[:, None] * g
                gs = -w * dot
            dx, dy = px - p[:, 0], py - p[:, 1]
            gdx, gdy = gs * dx, gs * dy
            rows = torch.stack(
                [
                    -(p[:, 2] * gdx + p[:, 3] * gdy),
                    -(p[:, 3] * gdx + p[:, 4] * gdy),
                    0.5 * gdx * dx,
                    gdx * dy,
                    0.5 * gdy * dy,
                    *d_col.unbind(1),
                ],
                dim=1,
            )
            d_packed.index_add_(0, gid, rows)
        d_means, d_conic, d_colors = d_packed.split([2, 3, C], dim=1)
        return d_means, d_conic, d_colors, *([None] * 9)


def rasterize_topk_torch(
    means: torch.Tensor,
    conic: torch.Tensor,
    colors: torch.Tensor,
    radius: torch.Tensor,
    height: int,
    width: int,
    *,
    k: int = 10,
    normalise: bool = True,
    eps: float = 1e-10,
    tile_size: int = 8,
    cutoff: bool = True,
    footprint: str = "pixel",
    chunk_pixels: int = 1 << 21,
) -> torch.Tensor:
    """Top-K rasterization of projected Gaussians (differentiable in means, conic and colours).

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels.
        conic: ``[N, 3]`` packed inverse covariances (zeros for degenerate Gaussians).
        colors: ``[N, C]`` any number of channels.
        radius: ``[N]`` footprint half-widths (0 = skip).
        height, width: output size.
        k: Gaussians kept per pixel (Image-GS: 10).
        normalise: divide by the kept weights' sum plus ``eps`` (Image-GS), else their plain sum.
        tile_size: work partition; results do not depend on it with the ``pixel`` footprint.
        cutoff: skip weights below 1/255.
        footprint: ``pixel`` (a Gaussian is a candidate inside its square footprint only, the shared
            semantics) or ``tile`` (at every pixel of every ``tile_size`` tile that footprint overlaps,
            as the official Image-GS kernel with 16x16 tiles).
        chunk_pixels: evaluations per chunk (memory bound).
    Returns:
        ``[C, H, W]`` image, not clamped.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if footprint not in ("pixel", "tile"):
        raise ValueError(f"footprint must be 'pixel' or 'tile', got {footprint!r}")
    lists = tile_lists(means, radius, height, width, tile_size)
    return RasterizeTopKTorch.apply(
        means, conic, colors, radius.detach(), lists, height, width, int(k), bool(normalise), float(eps),
        (bool(cutoff), footprint == "tile"), int(chunk_pixels),
    )  # fmt: skip
