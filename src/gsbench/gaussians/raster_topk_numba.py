"""The numba CPU top-K rasterizer (Image-GS): per pixel the K largest weights, optionally normalised.

Same contract as :mod:`.raster_topk_torch`. Layers:

* :func:`topk_forward` (``prange`` over tiles): each pixel keeps a sorted list of its K largest weights
  while the tile's Gaussians are visited in index order (ties keep the earlier Gaussian), then writes
  the pixel and, for the backward, the kept slots (positions in the per-tile lists of
  :func:`.raster_numba.bin_tiles`) and weights;
* :func:`topk_backward` (``prange`` over tiles) writes one partial gradient per (Gaussian, tile) slot:
  a slot belongs to one tile, so no two threads write it; :func:`reduce_slots` (``prange`` over
  Gaussians) then sums each Gaussian's slots in tile order. No atomics: bit-identical results;
* :class:`RasterizeTopKNumba` (autograd Function) and :func:`rasterize_topk_numba` (checked).

``footprint="tile"``: a Gaussian binned to a tile is a candidate at every pixel of it (the official
Image-GS kernel; the tile size then matters and is the caller's), else only inside its footprint box.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .raster_numba import (
    ALPHA_MIN,
    SHORT_ROW,
    SIGMA_CUT,
    TILE,
    as_array,
    bin_tiles,
    clip_span,
    ellipse,
    pixel_range,
    row_span,
    row_weights,
    set_threads,
)


@njit(parallel=True, cache=True)
def topk_forward(
    means, conic, colors, radius, tstart, tgid, height, width, tile, cutoff, tile_fp, normalise, eps,
    out, slots, weights,
):  # fmt: skip
    """``out [C, H, W]``; ``slots [H, W, K]`` (int64, -1 = none) and ``weights [H, W, K]`` (0 = none)."""
    k = slots.shape[2]
    tiles_x = (width + tile - 1) // tile
    n_ch = colors.shape[1]
    smax = SIGMA_CUT if cutoff else np.inf
    for t in prange(tstart.shape[0] - 1):
        x0, y0 = (t % tiles_x) * tile, (t // tiles_x) * tile
        x1, y1 = min(x0 + tile, width) - 1, min(y0 + tile, height) - 1
        top_w = np.full((tile, tile, k), -1.0)  # sorted, largest first
        top_s = np.full((tile, tile, k), -1, np.int64)
        wbuf = np.empty(tile + 4)  # one row span's weights
        for e in range(tstart[t], tstart[t + 1]):
            g = tgid[e]
            mx, my, r = float(means[g, 0]), float(means[g, 1]), float(radius[g])
            a, b, c = float(conic[g, 0]), float(conic[g, 1]), float(conic[g, 2])
            det, rec, ey = ellipse(a, b, c, smax)
            ea = np.exp(-a)
            if tile_fp:
                xa, xb, ya, yb = x0, x1, y0, y1
            else:
                xa, xb = pixel_range(mx, r, x0, x1)
                ya, yb = pixel_range(my, r, y0, y1)
            ya, yb = clip_span(my, ey, ya, yb)
            for y in range(ya, yb + 1):
                dy = y - my
                if not tile_fp and abs(dy) > r:
                    continue
                xs, xe = row_span(mx, a, b, det, dy, smax, ey, xa, xb)
                rec_row = rec and xe - xs >= SHORT_ROW  # short rows: an exp per pixel is cheaper
                row_weights(wbuf, xs, xe, mx, dy, a, b, c, smax, rec_row, ea)
                for x in range(xs, xe + 1):
                    w = wbuf[x - xs]
                    dx = x - mx
                    if (not tile_fp and abs(dx) > r) or w < 0.0 or (cutoff and w < ALPHA_MIN):
                        continue
                    ly, lx = y - y0, x - x0
                    j = k - 1
                    if top_w[ly, lx, j] >= w:
                        continue  # the list is full of weights at least as large
                    while j > 0 and top_w[ly, lx, j - 1] < w:  # insertion: shift the smaller ones down
                        top_w[ly, lx, j] = top_w[ly, lx, j - 1]
                        top_s[ly, lx, j] = top_s[ly, lx, j - 1]
                        j -= 1
                    top_w[ly, lx, j] = w
                    top_s[ly, lx, j] = e
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                ly, lx = y - y0, x - x0
                total = 0.0
                for j in range(k):
                    if top_s[ly, lx, j] >= 0:
                        total += top_w[ly, lx, j]
                scale = 1.0 / (total + eps) if normalise else 1.0
                for ch in range(n_ch):
                    v = 0.0
                    for j in range(k):
                        if top_s[ly, lx, j] >= 0:
                            v += top_w[ly, lx, j] * colors[tgid[top_s[ly, lx, j]], ch]
                    out[ch, y, x] = v * scale
                for j in range(k):
                    slots[y, x, j] = top_s[ly, lx, j]
                    weights[y, x, j] = max(top_w[ly, lx, j], 0.0)


@njit(parallel=True, cache=True)
def topk_backward(means, conic, colors, tstart, tgid, slots, weights, out, grad, tile, normalise, eps, part):
    """``part [slots, 5 + C]`` (zeros on entry): each kept slot's d(mean x, y, conic a, b, c, colour)."""
    height, width, k = slots.shape
    tiles_x = (width + tile - 1) // tile
    n_ch = colors.shape[1]
    for t in prange(tstart.shape[0] - 1):
        if tstart[t + 1] == tstart[t]:
            continue
        x0, y0 = (t % tiles_x) * tile, (t // tiles_x) * tile
        for y in range(y0, min(y0 + tile, height)):
            for x in range(x0, min(x0 + tile, width)):
                inv, go = 1.0, 0.0
                if normalise:
                    total = 0.0
                    for j in range(k):
                        total += weights[y, x, j]
                    inv = 1.0 / (total + eps)
                    for ch in range(n_ch):
                        go += grad[ch, y, x] * out[ch, y, x]
                for j in range(k):
                    e = slots[y, x, j]
                    if e < 0:
                        break
                    g = tgid[e]
                    w = float(weights[y, x, j])
                    dot = 0.0
                    for ch in range(n_ch):
                        dot += grad[ch, y, x] * colors[g, ch]
                        part[e, 5 + ch] += w * inv * grad[ch, y, x]
                    gs = -w * (dot - go) * inv  # dL/dsigma; d out / d w_n = (c_n - out) / D
                    dx, dy = x - float(means[g, 0]), y - float(means[g, 1])
                    gdx, gdy = gs * dx, gs * dy
                    part[e, 0] -= float(conic[g, 0]) * gdx + float(conic[g, 1]) * gdy
                    part[e, 1] -= float(conic[g, 1]) * gdx + float(conic[g, 2]) * gdy
                    part[e, 2] += 0.5 * gdx * dx
                    part[e, 3] += gdx * dy
                    part[e, 4] += 0.5 * gdy * dy


@njit(parallel=True, cache=True)
def reduce_slots(gstart, pos, part, d_all):
    """``d_all [N, 5 + C]``: each Gaussian's slots of ``part`` summed in its tile order (fixed)."""
    for g in prange(gstart.shape[0] - 1):
        for i in range(gstart[g], gstart[g + 1]):
            e = pos[i]
            if e >= 0:
                for j in range(part.shape[1]):
                    d_all[g, j] += part[e, j]


class RasterizeTopKNumba(torch.autograd.Function):
    """Top-K (normalised) rasterization on the CPU; the backward reads the kept slots and weights."""

    @staticmethod
    def forward(ctx, means, conic, colors, radius, height, width, k, normalise, eps, cutoff, tile, tile_fp):
        set_threads()
        m, q, col, r = as_array(means), as_array(conic), as_array(colors), as_array(radius)
        gstart, _, pos, tstart, tgid = bin_tiles(m, r, height, width, tile, -1)
        out = np.zeros((col.shape[1], height, width), dtype=col.dtype)
        slots = np.empty((height, width, k), np.int64)
        weights = np.empty((height, width, k), col.dtype)
        topk_forward(
            m, q, col, r, tstart, tgid, height, width, tile, cutoff, tile_fp, normalise, eps,
            out, slots, weights,
        )  # fmt: skip
        out_t = torch.from_numpy(out)
        ctx.save_for_backward(means, conic, colors, out_t)
        ctx.state = (gstart, pos, tstart, tgid, slots, weights, tile, normalise, eps)
        return out_t

    @staticmethod
    def backward(ctx, grad_out):
        means, conic, colors, out = ctx.saved_tensors
        gstart, pos, tstart, tgid, slots, weights, tile, normalise, eps = ctx.state
        set_threads()
        n, n_ch = colors.shape
        part = np.zeros((tgid.shape[0], 5 + n_ch))
        topk_backward(
            as_array(means), as_array(conic), as_array(colors), tstart, tgid, slots, weights,
            as_array(out), as_array(grad_out.to(colors.dtype)), tile, normalise, eps, part,
        )  # fmt: skip
        d_all = np.zeros((n, 5 + n_ch))
        reduce_slots(gstart, pos, part, d_all)
        d = torch.from_numpy(d_all)
        nones = [None] * 9
        return d[:, :2].to(means.dtype), d[:, 2:5].to(conic.dtype), d[:, 5:].to(colors.dtype), *nones


def rasterize_topk_numba(
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
    cutoff: bool = True,
    footprint: str = "pixel",
    tile_size: int = TILE,
) -> torch.Tensor:
    """Top-K rasterization of projected Gaussians on the CPU (differentiable in means, conic, colours).

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels.
        conic: ``[N, 3]`` packed inverse covariances (zeros for degenerate Gaussians).
        colors: ``[N, C]`` any number of channels.
        radius: ``[N]`` footprint half-widths (0 = skip).
        height, width: output size.
        k: Gaussians kept per pixel (Image-GS: 10).
        normalise: divide by the kept weights' sum plus ``eps``, else their plain sum.
        cutoff: skip weights below 1/255.
        footprint: ``pixel`` (candidate inside its footprint box) or ``tile`` (at every pixel of every
            ``tile_size`` tile that box overlaps, as the official Image-GS kernel).
        tile_size: the tiling; results depend on it only with ``footprint="tile"``.
    Returns:
        ``[C, H, W]`` image in the inputs' dtype, not clamped.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if footprint not in ("pixel", "tile"):
        raise ValueError(f"footprint must be 'pixel' or 'tile', got {footprint!r}")
    for name, t in (("means", means), ("conic", conic), ("colors", colors), ("radius", radius)):
        if t.device.type != "cpu":
            raise ValueError(f"the numba backend runs on the CPU; {name} is on {t.device}")
    if not (means.dtype == conic.dtype == colors.dtype) or means.dtype not in (torch.float32, torch.float64):
        raise ValueError("means, conic and colors must share one dtype, float32 or float64")
    return RasterizeTopKNumba.apply(
        means, conic, colors, radius.detach().to(means.dtype), int(height), int(width), int(k),
        bool(normalise), float(eps), bool(cutoff), int(tile_size), footprint == "tile",
    )  # fmt: skip
