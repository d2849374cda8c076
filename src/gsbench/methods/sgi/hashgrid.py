"""SGI's binary multi-resolution hash grid: the spatial context of the entropy model.

An Instant-NGP grid over the normalised image plane whose entries are binarised to +-1 with a
straight-through estimator (BiRF / HAC, the ``STE_binary`` of the public SGI code): the forward pass
uses ``sign``, the backward passes the gradient where the latent value lies in ``[-1, 1]``. Each level
has ``min(2^table_log2, R^2)`` entries (rounded up to a multiple of 8, as the code's ``GridEncoder``):
dense below the table size, Instant-NGP's spatial hash above it. Features are bilinear over the four
corners; the levels' features are concatenated.

The grid costs ``N+ (-log2 p) + N- (-log2 (1 - p)) + 32`` bits (the paper's Eq. 13 plus the code's 32
bits for ``p``), ``p`` the share of +1 entries; in the file it is arithmetic-coded under that Bernoulli.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

REFERENCE_SEEDS = 350_000  # train.sh's anchor count, for which the code's grid below was chosen
CODE_RESOLUTIONS = (18, 24, 33, 44, 59, 80, 108, 148, 201, 275, 376, 514)
CODE_TABLE_LOG2 = 13
CODE_FEATURES = 4
HASH_PRIME = 2654435761  # Instant-NGP's prime for the second coordinate (the first is 1)
MAX_RESOLUTION = 1 << 15


class STEBinary(torch.autograd.Function):
    """``+1`` where ``x >= 0`` else ``-1``; gradient passed through where ``|x| <= 1`` (zero outside)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def binarize(x: torch.Tensor) -> torch.Tensor:
    """Straight-through binarisation of any tensor to +-1 (see :class:`STEBinary`)."""
    return STEBinary.apply(x)


@dataclass(frozen=True)
class HashGridConfig:
    """Resolutions per level, log2 of the largest table, features per level."""

    resolutions: tuple[int, ...]
    table_log2: int
    features: int

    def level_sizes(self) -> list[int]:
        """Entries per level: ``min(2^table_log2, R^2)`` rounded up to a multiple of 8 (as the code)."""
        return [int(math.ceil(min(1 << self.table_log2, r * r) / 8) * 8) for r in self.resolutions]

    @property
    def entries(self) -> int:
        return sum(self.level_sizes())

    @property
    def output_dim(self) -> int:
        return len(self.resolutions) * self.features

    def validate(self) -> None:
        if not 1 <= len(self.resolutions) <= 32 or not all(
            2 <= r <= MAX_RESOLUTION for r in self.resolutions
        ):
            raise ValueError(f"hash grid resolutions must be 1..32 levels in 2..{MAX_RESOLUTION}")
        if not 2 <= self.table_log2 <= 24 or not 1 <= self.features <= 16:
            raise ValueError("hash grid table_log2 must be in 2..24 and features in 1..16")


def hash_config(num_seeds: int, cfg: Mapping[str, Any] | None = None) -> HashGridConfig:
    """The grid for ``num_seeds`` seeds from the ``method.hash`` node.

    ``scale: auto`` (default) shrinks the code's grid, chosen for 350,000 seeds, to smaller seed counts:
    resolutions by ``sqrt(S / 350k)`` (the finest cell keeps its size relative to the seed spacing) and the
    table by ``S / 350k`` (entries per seed stay the code's), never below 2 and 2^4; at 350k seeds or more
    it is the code's grid. ``scale: none`` takes ``resolutions`` and ``table_log2`` as given.
    """
    cfg = dict(cfg or {})
    resolutions = tuple(int(r) for r in cfg.get("resolutions", CODE_RESOLUTIONS))
    table_log2 = int(cfg.get("table_log2", CODE_TABLE_LOG2))
    features = int(cfg.get("features", CODE_FEATURES))
    mode = str(cfg.get("scale", "auto"))
    if mode not in ("auto", "none"):
        raise ValueError(f"method.hash.scale must be auto or none, got {mode!r}")
    if mode == "auto":
        ratio = min(1.0, max(num_seeds, 1) / REFERENCE_SEEDS)
        resolutions = tuple(max(2, round(r * math.sqrt(ratio))) for r in resolutions)
        table_log2 = max(4, min(table_log2, round(table_log2 + math.log2(ratio))))
    out = HashGridConfig(resolutions, table_log2, features)
    out.validate()
    return out


def grid_corners(xy: torch.Tensor, config: HashGridConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry indices and bilinear weights of the four corners on every level.

    Args:
        xy: ``[N, 2]`` positions normalised to [0, 1] (x, y).
        config: the grid.
    Returns:
        ``index`` ``[N, L, 4]`` int64 rows of the flat table and ``weight`` ``[N, L, 4]`` (same dtype as xy).
    """
    xy = xy.clamp(0.0, 1.0)
    indices, weights, offset = [], [], 0
    for res, size in zip(config.resolutions, config.level_sizes(), strict=True):
        pos = xy * (res - 1)
        base = pos.floor().clamp(0, res - 2)
        frac = pos - base
        base = base.long()
        level_idx, level_w = [], []
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            ix, iy = base[:, 0] + dx, base[:, 1] + dy
            # dense when every lattice point has its own entry, else Instant-NGP's hash (xor with a prime)
            dense = res * res <= size
            idx = ix + iy * res if dense else torch.bitwise_xor(ix, iy * HASH_PRIME) % size
            wx = frac[:, 0] if dx else 1 - frac[:, 0]
            wy = frac[:, 1] if dy else 1 - frac[:, 1]
            level_idx.append(idx + offset)
            level_w.append(wx * wy)
        indices.append(torch.stack(level_idx, dim=-1))
        weights.append(torch.stack(level_w, dim=-1))
        offset += size
    return torch.stack(indices, dim=1), torch.stack(weights, dim=1)


def interpolate(table: torch.Tensor, xy: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """``[N, L * F]`` features at ``xy`` ``[N, 2]`` from a (binarised) table ``[entries, F]``."""
    index, weight = grid_corners(xy, config)
    corners = table[index]  # [N, L, 4, F]
    feats = (corners * weight.to(table.dtype)[..., None]).sum(dim=2)
    return feats.reshape(xy.shape[0], -1)


class HashGrid(nn.Module):
    """The learnable grid: latent values ``params`` ``[entries, F]``, used binarised.

    Args:
        config: the grid layout.
        generator: seeds the uniform(-1e-4, 1e-4) initialisation (the code's ``reset_parameters``).
    """

    def __init__(self, config: HashGridConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        init = (torch.rand(config.entries, config.features, generator=generator) * 2 - 1) * 1e-4
        self.params = nn.Parameter(init)

    def binary(self) -> torch.Tensor:
        """``[entries, F]`` the +-1 table (differentiable through the straight-through estimator)."""
        return binarize(self.params)

    def forward(self, xy: torch.Tensor) -> torch.Tensor:
        """``[N, L * F]`` binary-grid features at normalised positions ``xy`` ``[N, 2]``."""
        return interpolate(self.binary(), xy, self.config)

    @torch.no_grad()
    def bits(self) -> float:
        """Eq. 13: the Bernoulli code length of the binary table, plus 32 bits for ``p`` (as the code)."""
        return binary_bits(int((self.params >= 0).sum()), self.params.numel())


def binary_bits(positives: int, total: int) -> float:
    """``N+ (-log2 p) + N- (-log2 (1 - p)) + 32`` with ``p = N+ / N`` clamped to [1e-6, 1 - 1e-6]."""
    if total <= 0:
        return 32.0
    p = min(max(positives / total, 1e-6), 1 - 1e-6)
    return -positives * math.log2(p) - (total - positives) * math.log2(1 - p) + 32.0
