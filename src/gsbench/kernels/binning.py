"""Tile binning: (Gaussian, tile) intersections sorted by tile, with per-tile ranges. No cap per tile.

From the projection's tile rectangles ``rect [N, 4]`` and counts ``count [N]``:

1. ``offsets = cumsum(count)``, one host sync for the total number of intersections ``I``;
2. :func:`_emit_tiles_kernel` writes each Gaussian's tile ids at ``offsets[n] - count[n] ...``, so the
   intersections come out in Gaussian-index order;
3. a stable ``torch.sort`` by tile id keeps Gaussian-index order inside each tile (the legacy cap
   needs that order, and it makes the summation order deterministic);
4. ``tile_start [T + 1]`` by ``searchsorted``: tile ``t`` owns ``gids[tile_start[t]:tile_start[t+1]]``.

The legacy cap (the official GaussianImage kernel renders only the first 256 Gaussians of a 16x16 tile)
is applied by the rasterizers, which read at most ``cap`` entries of each tile range.
The PyTorch reference is :func:`gsbench.gaussians.raster_torch.bin_gaussians`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import Launch, is_interpreted, kernel, run

BLOCK = 128


@kernel
def _emit_tiles_kernel(rect_ptr, count_ptr, offset_ptr, tile_ptr, n, tiles_x, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    cnt = tl.load(count_ptr + offs, mask=m, other=0)
    start = tl.load(offset_ptr + offs, mask=m, other=0) - cnt  # exclusive prefix sum
    x0 = tl.load(rect_ptr + offs * 4 + 0, mask=m, other=0)
    y0 = tl.load(rect_ptr + offs * 4 + 1, mask=m, other=0)
    x1 = tl.load(rect_ptr + offs * 4 + 2, mask=m, other=0)
    nx = tl.maximum(x1 - x0 + 1, 1)
    # Loop to the largest count in the block: most Gaussians cover 1-4 tiles, so lanes idle little.
    for k in range(0, tl.max(cnt, 0)):
        tile = (y0 + k // nx) * tiles_x + x0 + k % nx
        tl.store(tile_ptr + start + k, tile, mask=m & (k < cnt))


def plan_emit_tiles(rect, count, offsets, tiles, tiles_x: int) -> Launch:
    """The launch writing the tile ids of Gaussian n at ``offsets[n] - count[n]`` (``offsets`` int64
    inclusive cumulative counts) into ``tiles``."""
    n = count.shape[0]
    return Launch(
        _emit_tiles_kernel, (triton.cdiv(n, BLOCK),),
        dict(rect_ptr=rect, count_ptr=count, offset_ptr=offsets, tile_ptr=tiles, n=n, tiles_x=tiles_x),
        dict(BLOCK=BLOCK),
    )


def launch_plans(space) -> list[Launch]:
    """Every launch of this module (one: it is dtype- and option-independent), from placeholders."""
    from . import placeholder as ph

    i32 = ph(torch.int32)
    return [plan_emit_tiles(i32.new_empty(1, 4), i32.new_empty(1), ph(torch.int64), i32, 1)]


@dataclass(frozen=True)
class Bins:
    """Intersections sorted by tile.

    Attributes:
        gids: ``[I]`` int32 Gaussian index of each intersection, grouped by tile.
        order: ``[I]`` int64 position of each sorted intersection in Gaussian-index order.
        tile_start: ``[tiles_y * tiles_x + 1]`` int32 range starts (row-major tiles).
    """

    gids: torch.Tensor
    order: torch.Tensor
    tile_start: torch.Tensor
    tile_size: int
    tiles_x: int
    tiles_y: int


def bin_tiles_triton(
    rect: torch.Tensor, count: torch.Tensor, height: int, width: int, tile_size: int = 16
) -> Bins:
    """Bin Gaussians into tiles.

    Args:
        rect: ``[N, 4]`` int32 inclusive tile rectangles (x0, y0, x1, y1) from the projection.
        count: ``[N]`` int32 number of tiles each Gaussian overlaps (0 = not rendered).
        height, width: image size; tile_size: tile edge in pixels (the projection's).
    """
    n = count.shape[0]
    if rect.shape != (n, 4) or rect.dtype != torch.int32 or count.dtype != torch.int32:
        raise ValueError("rect must be [N, 4] int32 and count [N] int32 (from project_triton)")
    if rect.device != count.device:
        raise ValueError("rect and count must be on the same device")
    if rect.device.type == "cpu" and not is_interpreted(_emit_tiles_kernel):
        raise ValueError("CPU tensors need TRITON_INTERPRET=1 set before gsbench.kernels.* is imported")
    dev = rect.device
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    n_tiles = tiles_x * tiles_y
    offsets = (
        torch.cumsum(count, 0, dtype=torch.int64) if n else torch.zeros(0, dtype=torch.int64, device=dev)
    )
    total = int(offsets[-1]) if n else 0  # the one host sync: sizes the intersection buffer
    tiles = torch.empty(total, dtype=torch.int32, device=dev)
    if total:
        run(plan_emit_tiles(rect.contiguous(), count.contiguous(), offsets, tiles, tiles_x))
    sorted_tiles, order = torch.sort(tiles, stable=True)
    # Gaussian index of the sorted intersections: emitted in index order, so gid = owner of `order`.
    gids = (torch.searchsorted(offsets, order, right=True)).to(torch.int32)
    bounds = torch.arange(n_tiles + 1, dtype=torch.int32, device=dev)
    tile_start = torch.searchsorted(sorted_tiles, bounds).to(torch.int32)
    return Bins(gids, order, tile_start, tile_size, tiles_x, tiles_y)
