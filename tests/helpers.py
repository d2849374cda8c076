"""Random test inputs shared by the renderer and kernel tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch

F64 = torch.float64


def random_gaussians(
    n: int,
    h: int,
    w: int,
    seed: int,
    *,
    channels: int = 3,
    scale: float = 3.0,
    margin: float = 6.0,
    color_range: tuple[float, float] = (-0.5, 1.5),
    dtype: torch.dtype = F64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random Gaussians over an ``h x w`` image, drawn from a fresh generator seeded by ``seed``.

    Returns:
        means ``[n, 2]`` (some straddling the borders by up to ``margin`` px), Cholesky factors ``[n, 3]``
        (l1, l3 in [0.5, 0.5 + scale), l2 in [-scale/2, scale/2)) and colours ``[n, channels]`` uniform in
        ``color_range`` (the default leaves [0, 1] on purpose: renders must not assume it).
    """
    g = torch.Generator().manual_seed(seed)
    span = torch.tensor([w + 2 * margin, h + 2 * margin], dtype=dtype)
    means = torch.rand(n, 2, generator=g, dtype=dtype) * span - margin
    chol = torch.rand(n, 3, generator=g, dtype=dtype) * scale + torch.tensor(
        [0.5, -0.5 * scale, 0.5], dtype=dtype
    )
    lo, hi = color_range
    colors = torch.rand(n, channels, generator=g, dtype=dtype) * (hi - lo) + lo
    return means, chol, colors
