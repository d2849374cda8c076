"""The numba CPU rasterizer (accumulated sum): binning, forward and backward as compiled loops.

Same contract as :mod:`.raster_torch` (pixel centres, square footprint, positive-definiteness, 1/255
cut-off, optional legacy 256-per-tile cap), in three layers:

* ``@njit`` kernels over plain arrays: :func:`bin_tiles` (serial, O(N + intersections)),
  :func:`sum_forward` (``prange`` over tiles: each tile owns its pixels, so no two threads write one
  value) and :func:`sum_backward` (``prange`` over Gaussians: each Gaussian sums its own gradient over
  its footprint in one pass, or tile by tile under the legacy cap, so there are no atomics and no
  cross-thread reduction);
* :class:`RasterizeSumNumba`, the autograd Function;
* :func:`rasterize_sum_numba`, the checked public function.

Every loop is clipped to the Gaussian's footprint (and, with the cut-off, row by row to its cut-off
ellipse), and arithmetic runs in float64 whatever the input dtype (the scalar loops cost the same;
float32 inputs then lose nothing beyond their storage). Results are bit-identical run after run and for
any thread count: each output value is summed in a fixed order (Gaussian index inside a tile, tile then
pixel order inside a Gaussian).
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

ALPHA_MIN = 1.0 / 255.0  # the official kernels' cut-off (same value as raster_torch.ALPHA_MIN)
TILE = 16  # the work partition; results do not depend on it unless the legacy cap is on
# With the cut-off on, pixels with sigma above ln(255) = 5.5413 are skipped: loops are clipped to the
# ellipse sigma <= SIGMA_CUT (a little beyond, so rounding never drops a pixel the exact test keeps).
SIGMA_CUT = 5.55
# Along a row, w(x + 1) = w(x) q(x) with q(x + 1) = q(x) exp(-a): two products per pixel instead of an
# exp. Used where the span is clipped to that ellipse and a <= A_RECURRENCE, so every weight on the
# span stays above exp(-64) (no underflow). The drift grows with the row's length: ~1e-13 relative over
# a tile row (forward), ~1e-11 over a 768-pixel row (the backward's rows are not cut at tiles).
A_RECURRENCE = 16.0
SHORT_ROW = 6  # rows of fewer pixels are neither clipped to the ellipse nor run by the recurrence


@njit(cache=True)
def bin_tiles(means, radius, height, width, tile, cap):
    """(Gaussian, tile) intersections, grouped by Gaussian and by tile.

    The footprint test and tile range are the expressions of :func:`.raster_torch.bin_gaussians`, in
    float64. ``cap >= 0`` keeps only the first ``cap`` Gaussians (by index) of each tile.

    Returns:
        gstart ``[N+1]``: Gaussian n owns intersections ``gstart[n]:gstart[n+1]`` (tile-row order);
        itile ``[I]`` tile id of each intersection; pos ``[I]`` its slot in the per-tile lists, -1 when
        the cap dropped it; tstart ``[tiles+1]`` and tgid ``[kept]``: tile t lists the Gaussians
        ``tgid[tstart[t]:tstart[t+1]]`` in index order.
    """
    n = means.shape[0]
    tiles_x = (width + tile - 1) // tile
    n_tiles = tiles_x * ((height + tile - 1) // tile)
    rect = np.zeros((n, 4), np.int64)
    gstart = np.zeros(n + 1, np.int64)
    for g in range(n):
        mx, my, r = float(means[g, 0]), float(means[g, 1]), float(radius[g])
        nx = ny = 0
        inside = r > 0 and mx + r >= 0 and mx - r <= width - 1 and my + r >= 0 and my - r <= height - 1
        if inside and np.isfinite(mx) and np.isfinite(my):
            rect[g, 0] = int(max(np.ceil(mx - r), 0.0)) // tile
            rect[g, 1] = int(min(np.floor(mx + r), width - 1.0)) // tile
            rect[g, 2] = int(max(np.ceil(my - r), 0.0)) // tile
            rect[g, 3] = int(min(np.floor(my + r), height - 1.0)) // tile
            nx, ny = max(rect[g, 1] - rect[g, 0] + 1, 0), max(rect[g, 3] - rect[g, 2] + 1, 0)
        gstart[g + 1] = gstart[g] + nx * ny
    n_isect = gstart[n]
    itile = np.empty(n_isect, np.int64)
    pos = np.full(n_isect, -1, np.int64)
    tcount = np.zeros(n_tiles, np.int64)
    for g in range(n):
        i = gstart[g]
        if gstart[g + 1] == i:
            continue  # not rendered (its rect is unset)
        for ty in range(rect[g, 2], rect[g, 3] + 1):
            for tx in range(rect[g, 0], rect[g, 1] + 1):
                t = ty * tiles_x + tx
                itile[i] = t
                if cap < 0 or tcount[t] < cap:
                    pos[i] = tcount[t]  # rank inside the tile for now; made global below
                    tcount[t] += 1
                i += 1
    tstart = np.zeros(n_tiles + 1, np.int64)
    for t in range(n_tiles):
        tstart[t + 1] = tstart[t] + tcount[t]
    tgid = np.empty(tstart[n_tiles], np.int64)
    for g in range(n):
        for i in range(gstart[g], gstart[g + 1]):
            if pos[i] >= 0:
                pos[i] += tstart[itile[i]]
                tgid[pos[i]] = g
    return gstart, itile, pos, tstart, tgid


@njit(inline="always")
def pixel_range(m, r, lo, hi):
    """Integer pixels ``[a, b]`` of ``[lo, hi]`` that may hold ``|p - m| <= r`` (one extra each side:
    the exact test runs per pixel, so rounding of ``m -/+ r`` never drops a pixel)."""
    a = max(float(lo), np.ceil(m - r) - 1.0)
    b = min(float(hi), np.floor(m + r) + 1.0)
    return int(a), int(b)


@njit(inline="always")
def clip_span(m, e, lo, hi):
    """Integer pixels of ``[lo, hi]`` within ``e`` of ``m``, widened (the exact test runs per pixel)."""
    return int(max(float(lo), np.floor(m - e) - 1.0)), int(min(float(hi), np.ceil(m + e) + 1.0))


@njit(inline="always")
def ellipse(a, b, c, smax):
    """``(det, rec, ey)`` of a conic: its determinant, whether rows may use the recurrence (see
    :data:`A_RECURRENCE`), and the half-height of its ``sigma <= smax`` ellipse (inf: unclipped)."""
    det = a * c - b * b
    clipped = smax < np.inf and a > 0.0 and det > 0.0
    ey = np.sqrt(2.0 * smax * a / det) * (1.0 + 1e-6) if clipped else np.inf
    return det, clipped and a <= A_RECURRENCE, ey


@njit(inline="always")
def row_span(mx, a, b, det, dy, smax, ey, lo, hi):
    """Pixels ``[xa, xb]`` of ``[lo, hi]`` on the row at offset ``dy`` where ``sigma <= smax`` may hold.

    ``sigma(dx) = a dx^2 / 2 + b dy dx + c dy^2 / 2`` is a parabola in ``dx``: its roots bound the span
    (widened, so that the exact per-pixel test decides at the edges). ``ey = inf`` (no cut-off, or a
    conic that is not positive definite): the whole ``[lo, hi]``.
    """
    if ey == np.inf or hi - lo < SHORT_ROW:
        return lo, hi  # short rows: the per-pixel test is cheaper than the square root
    disc = 2.0 * a * smax - det * dy * dy
    if disc < 0.0:
        return 1, 0  # the row misses the ellipse
    return clip_span(mx - b * dy / a, np.sqrt(disc) / a * (1.0 + 1e-6), lo, hi)


@njit(inline="always")
def row_start(a, b, c, dx, dy, rec):
    """The weight at offset ``(dx, dy)`` and its ratio to the next pixel's (zeros when ``rec`` is off)."""
    if not rec:
        return 0.0, 0.0
    w = np.exp(-(0.5 * a * dx * dx + 0.5 * c * dy * dy + b * dx * dy))
    return w, np.exp(-(a * dx + 0.5 * a + b * dy))


@njit(inline="always")
def row_weights(wbuf, xs, xe, mx, dy, a, b, c, smax, rec_row, ea):
    """``wbuf[0 : xe - xs + 1]``: the weights along a row span, -1 where ``sigma`` is negative or above
    ``smax`` (without the recurrence). Two plain loops, so the recurrence's never calls ``exp``."""
    if rec_row:
        wr, qr = row_start(a, b, c, xs - mx, dy, True)
        for j in range(xe - xs + 1):
            wbuf[j] = wr
            wr *= qr
            qr *= ea
    else:
        for j in range(xe - xs + 1):
            dx = xs + j - mx
            sigma = 0.5 * a * dx * dx + 0.5 * c * dy * dy + b * dx * dy
            wbuf[j] = np.exp(-sigma) if 0.0 <= sigma <= smax else -1.0


@njit(inline="always")
def rgb(colors, g):
    """Gaussian ``g``'s three channels as scalars (zeros unless C = 3): the common case, unrolled."""
    if colors.shape[1] != 3:
        return 0.0, 0.0, 0.0
    return float(colors[g, 0]), float(colors[g, 1]), float(colors[g, 2])


@njit(parallel=True, cache=True)
def sum_forward(means, conic, colors, radius, tstart, tgid, height, width, tile, cutoff, out):
    """``out [C, H, W]`` (zeros on entry) ``+= colour_n w_n(p)`` for every kept Gaussian of each tile."""
    tiles_x = (width + tile - 1) // tile
    n_tiles = tstart.shape[0] - 1
    n_ch = colors.shape[1]
    smax = SIGMA_CUT if cutoff else np.inf
    for t in prange(n_tiles):
        if tstart[t + 1] == tstart[t]:
            continue  # empty tile: out is zero there already
        x0, y0 = (t % tiles_x) * tile, (t // tiles_x) * tile
        x1, y1 = min(x0 + tile, width) - 1, min(y0 + tile, height) - 1
        acc = np.zeros((tile, tile, n_ch))  # float64 tile buffer, channels last, written once below
        wbuf = np.empty(tile + 4)  # one row span's weights (a span lies within the tile)
        for e in range(tstart[t], tstart[t + 1]):
            g = tgid[e]
            mx, my, r = float(means[g, 0]), float(means[g, 1]), float(radius[g])
            a, b, c = float(conic[g, 0]), float(conic[g, 1]), float(conic[g, 2])
            c0, c1, c2 = rgb(colors, g)
            det, rec, ey = ellipse(a, b, c, smax)
            ea = np.exp(-a)
            xa, xb = pixel_range(mx, r, x0, x1)
            ya, yb = pixel_range(my, r, y0, y1)
            ya, yb = clip_span(my, ey, ya, yb)
            for y in range(ya, yb + 1):
                dy = y - my
                if abs(dy) > r:
                    continue
                xs, xe = row_span(mx, a, b, det, dy, smax, ey, xa, xb)
                rec_row = rec and xe - xs >= SHORT_ROW  # short rows: an exp per pixel is cheaper
                row_weights(wbuf, xs, xe, mx, dy, a, b, c, smax, rec_row, ea)
                for x in range(xs, xe + 1):
                    w = wbuf[x - xs]
                    dx = x - mx
                    if abs(dx) > r or w < 0.0 or (cutoff and w < ALPHA_MIN):
                        continue
                    ly, lx = y - y0, x - x0
                    if n_ch == 3:
                        acc[ly, lx, 0] += w * c0
                        acc[ly, lx, 1] += w * c1
                        acc[ly, lx, 2] += w * c2
                    else:
                        for ch in range(n_ch):
                            acc[ly, lx, ch] += w * colors[g, ch]
        for ch in range(n_ch):
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    out[ch, y, x] = acc[y - y0, x - x0, ch]


@njit(parallel=True, cache=True)
def sum_backward(means, conic, colors, radius, gstart, itile, pos, grad, tile, cutoff, whole, d_geo, d_col):
    """Per Gaussian: ``d_geo [N, 5]`` = d(mean x, mean y, conic a, b, c), ``d_col [N, C]`` (float64).

    ``whole`` (no legacy cap): each Gaussian's footprint in one pass; with the cap, the same for the
    Gaussians it dropped nowhere, tile by tile (the kept tiles) for the others.
    """
    height, width = grad.shape[1], grad.shape[2]
    tiles_x = (width + tile - 1) // tile
    n_ch = colors.shape[1]
    smax = SIGMA_CUT if cutoff else np.inf
    for g in prange(means.shape[0]):
        mx, my, r = float(means[g, 0]), float(means[g, 1]), float(radius[g])
        a, b, c = float(conic[g, 0]), float(conic[g, 1]), float(conic[g, 2])
        c0, c1, c2 = rgb(colors, g)
        det, rec, ey = ellipse(a, b, c, smax)
        ea = np.exp(-a)
        s_dx = s_dy = s_dxdx = s_dxdy = s_dydy = d0 = d1 = d2 = 0.0
        # A Gaussian kept in every tile it touches (always without the cap, nearly always with it) is
        # walked over its whole footprint in one pass; one the cap dropped somewhere, tile by tile.
        kept_everywhere = whole
        if not whole:
            kept_everywhere = True
            for i in range(gstart[g], gstart[g + 1]):
                if pos[i] < 0:
                    kept_everywhere = False
                    break
        i_end = min(gstart[g + 1], gstart[g] + 1) if kept_everywhere else gstart[g + 1]
        fa, fb = pixel_range(mx, r, 0, width - 1) if gstart[g + 1] > gstart[g] else (0, 0)  # else unset
        wbuf = np.empty(max(fb - fa + 1, 1))  # a row span never leaves the footprint's columns
        for i in range(gstart[g], i_end):
            if pos[i] < 0:
                continue  # dropped by the legacy cap
            t = itile[i]
            x0, y0 = (t % tiles_x) * tile, (t // tiles_x) * tile
            x1, y1 = min(x0 + tile, width) - 1, min(y0 + tile, height) - 1
            if kept_everywhere:
                x0, y0, x1, y1 = 0, 0, width - 1, height - 1
            xa, xb = pixel_range(mx, r, x0, x1)
            ya, yb = pixel_range(my, r, y0, y1)
            ya, yb = clip_span(my, ey, ya, yb)
            for y in range(ya, yb + 1):
                dy = y - my
                if abs(dy) > r:
                    continue
                xs, xe = row_span(mx, a, b, det, dy, smax, ey, xa, xb)
                rec_row = rec and xe - xs >= SHORT_ROW  # short rows: an exp per pixel is cheaper
                row_weights(wbuf, xs, xe, mx, dy, a, b, c, smax, rec_row, ea)
                for x in range(xs, xe + 1):
                    w = wbuf[x - xs]
                    dx = x - mx
                    if abs(dx) > r or w < 0.0 or (cutoff and w < ALPHA_MIN):
                        continue
                    if n_ch == 3:
                        g0, g1, g2 = float(grad[0, y, x]), float(grad[1, y, x]), float(grad[2, y, x])
                        dot = g0 * c0 + g1 * c1 + g2 * c2
                        d0 += w * g0
                        d1 += w * g1
                        d2 += w * g2
                    else:
                        dot = 0.0
                        for ch in range(n_ch):
                            gv = grad[ch, y, x]
                            dot += gv * colors[g, ch]
                            d_col[g, ch] += w * gv
                    gs = -w * dot  # dL/dsigma
                    s_dx += gs * dx
                    s_dy += gs * dy
                    s_dxdx += gs * dx * dx
                    s_dxdy += gs * dx * dy
                    s_dydy += gs * dy * dy
        if n_ch == 3:
            d_col[g, 0], d_col[g, 1], d_col[g, 2] = d0, d1, d2
        d_geo[g, 0] = -(a * s_dx + b * s_dy)
        d_geo[g, 1] = -(b * s_dx + c * s_dy)
        d_geo[g, 2] = 0.5 * s_dxdx
        d_geo[g, 3] = s_dxdy
        d_geo[g, 4] = 0.5 * s_dydy


def set_threads() -> None:
    """Use torch's CPU thread count (bounded by numba's pool): one knob for both, no oversubscription."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def as_array(t: torch.Tensor) -> np.ndarray:
    """A contiguous numpy view (or copy) of a CPU tensor, detached."""
    return t.detach().contiguous().numpy()


class RasterizeSumNumba(torch.autograd.Function):
    """Accumulated summation on the CPU; the backward recomputes weights from the saved inputs."""

    @staticmethod
    def forward(ctx, means, conic, colors, radius, height, width, cutoff, cap):
        set_threads()
        m, r = as_array(means), as_array(radius)
        bins = bin_tiles(m, r, height, width, TILE, cap)
        gstart, itile, pos, tstart, tgid = bins
        out = np.zeros((colors.shape[1], height, width), dtype=as_array(colors).dtype)
        sum_forward(m, as_array(conic), as_array(colors), r, tstart, tgid, height, width, TILE, cutoff, out)
        ctx.save_for_backward(means, conic, colors, radius)
        ctx.bins, ctx.cutoff, ctx.whole = (gstart, itile, pos), cutoff, cap < 0
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        means, conic, colors, radius = ctx.saved_tensors
        set_threads()
        n, n_ch = colors.shape
        d_geo, d_col = np.zeros((n, 5)), np.zeros((n, n_ch))
        grad = as_array(grad_out.to(colors.dtype))
        sum_backward(
            as_array(means), as_array(conic), as_array(colors), as_array(radius), *ctx.bins, grad, TILE,
            ctx.cutoff, ctx.whole, d_geo, d_col,
        )  # fmt: skip
        d_geo, d_col = torch.from_numpy(d_geo).to(means.dtype), torch.from_numpy(d_col).to(colors.dtype)
        return d_geo[:, :2], d_geo[:, 2:], d_col, None, None, None, None, None


def rasterize_sum_numba(
    means: torch.Tensor,
    conic: torch.Tensor,
    colors: torch.Tensor,
    radius: torch.Tensor,
    height: int,
    width: int,
    *,
    cutoff: bool = True,
    legacy_cap: int | None = None,
) -> torch.Tensor:
    """Rasterize projected Gaussians by accumulated summation on the CPU (differentiable in means, conic
    and colours).

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels.
        conic: ``[N, 3]`` packed inverse covariances (zeros for degenerate Gaussians).
        colors: ``[N, C]`` any number of channels.
        radius: ``[N]`` footprint half-widths (0 = skip).
        height, width: output size.
        cutoff: skip weights below 1/255.
        legacy_cap: render only the first ``legacy_cap`` Gaussians of each 16x16 tile (the official bug).
    Returns:
        ``[C, H, W]`` image in the inputs' dtype (float32 or float64), not clamped.
    """
    for name, t in (("means", means), ("conic", conic), ("colors", colors), ("radius", radius)):
        if t.device.type != "cpu":
            raise ValueError(f"the numba backend runs on the CPU; {name} is on {t.device}")
    if not (means.dtype == conic.dtype == colors.dtype) or means.dtype not in (torch.float32, torch.float64):
        raise ValueError("means, conic and colors must share one dtype, float32 or float64")
    cap = -1 if legacy_cap is None else int(legacy_cap)
    return RasterizeSumNumba.apply(
        means, conic, colors, radius.detach().to(means.dtype), int(height), int(width), bool(cutoff), cap
    )
