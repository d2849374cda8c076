"""The numba kernel of :func:`.fused_loss.clamped_mse` (imported only where numba is installed)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def clamped_se(raw, target, grad, scale):
    """Sum of ``(clamp(raw, 0, 1) - target)^2`` over ``[R, L]`` rows; ``grad = scale * d(...)/d raw``.

    Row sums are added in row order: the result does not depend on the thread count.
    """
    part = np.zeros(raw.shape[0])
    for i in prange(raw.shape[0]):
        s = 0.0
        for j in range(raw.shape[1]):
            v = raw[i, j]
            x = v  # NaN stays NaN (the fit loop's finiteness check then stops the fit)
            if x < 0.0:
                x = 0.0
            elif x > 1.0:
                x = 1.0
            d = x - target[i, j]
            s += d * d
            # torch's clamp passes the gradient where min <= v <= max
            grad[i, j] = scale * d if (v >= 0.0 and v <= 1.0) else 0.0
        part[i] = s
    total = 0.0
    for i in range(raw.shape[0]):
        total += part[i]
    return total
