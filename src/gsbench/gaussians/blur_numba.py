"""The numba kernels of :func:`.ssim_loss.ssim_loss`: a separable blur with a short 1-D window, valid
part only (as ``pytorch_msssim``'s ``gaussian_filter``), and its adjoint (imported only where numba is
installed).

torch's CPU convolution runs this depthwise ``[C, 1, 11, 1]`` filter slowly: with these loops the SSIM
term of an Image-GS step (forward + backward, 768x512) takes 62 ms of CPU time instead of 151 ms
(``benchmarks/train_step.py``). Each output value is summed in a fixed order, so results do not depend
on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def blur_valid(x, g, out):
    """``out [N, H-k+1, W-k+1] = g (x) g * x [N, H, W]``: along rows (H) first, then columns (W)."""
    n, h, w = x.shape
    k = g.shape[0]
    hv, wv = h - k + 1, w - k + 1
    for i in prange(n * hv):
        b, y = i // hv, i % hv
        row = np.zeros(w, x.dtype)
        for t in range(k):  # axpy form: the inner loops vectorise
            gt = g[t]
            src = x[b, y + t]
            for xx in range(w):
                row[xx] += gt * src[xx]
        acc = np.zeros(wv, x.dtype)
        for t in range(k):
            gt = g[t]
            for xx in range(wv):
                acc[xx] += gt * row[xx + t]
        dst = out[b, y]
        for xx in range(wv):
            dst[xx] = acc[xx]


@njit(parallel=True, cache=True)
def blur_valid_adjoint(gout, g, gin):
    """The adjoint of :func:`blur_valid`: ``gin [N, H, W] = blur_valid^T gout [N, H-k+1, W-k+1]``."""
    n, hv, wv = gout.shape
    k = g.shape[0]
    h, w = hv + k - 1, wv + k - 1
    for i in prange(n * h):
        b, y = i // h, i % h
        row = np.zeros(wv, gout.dtype)  # sum over the output rows that read input row y
        for t in range(k):
            yo = y - t
            if 0 <= yo < hv:
                gt = g[t]
                src = gout[b, yo]
                for xx in range(wv):
                    row[xx] += gt * src[xx]
        acc = np.zeros(w, gout.dtype)  # input column xo + t receives g[t] row[xo]
        for t in range(k):
            gt = g[t]
            for xo in range(wv):
                acc[xo + t] += gt * row[xo]
        dst = gin[b, y]
        for xx in range(w):
            dst[xx] = acc[xx]
