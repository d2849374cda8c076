"""Seed-based 2D neural Gaussians (SGI Sec. 3.1) and the Gaussian pyramid of the multi-scale fit.

Each seed ``i`` has a fixed position ``p_i``, a feature ``f_i`` (``F`` values), ``K`` offsets ``o_ik`` and a
scaling ``l_i`` (4 values, pixels). Two MLPs decode its ``K`` Gaussians: ``mlp_color(f_i)`` gives the
weighted colours ``[K, 3]`` (linear output), ``mlp_cov(f_i)`` gives base scales and angles ``[K, 3]``;
``mean_ik = p_i + o_ik * l_i[0:2]``, ``scale_ik = l_i[2:4] * sigmoid(s_ik)``,
``Sigma_ik = R(theta_ik) diag(scale_ik^2) R^T``, rendered by accumulated summation.

Positions and scalings live in the pixel units of the current pyramid level; the seeds are stored at
full resolution and divided by ``2^level``. Moving to the next finer level doubles both (Eq. 16, the
code's ``update_attr_scale``: ``_scaling += log 2``, ``_anchor *= 2``), so the Gaussians keep their place
and shape relative to the image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...gaussians import scale_rot_to_cov
from .context import ContextModel, two_layer_mlp
from .hashgrid import HashGridConfig

SCALING_LOG_CLAMP = (1e-4, 0.5)  # the code clamps log(sqrt(mean 3-NN dist^2)) at initialisation


def jittered_seeds(n: int, height: int, width: int, unit: int, generator: torch.Generator) -> torch.Tensor:
    """The code's ``jittered_sample_exact`` at the coarsest level: ``g = ceil(sqrt(n))``, one random
    integer point in each of ``g x g`` cells of the ``ceil(H / unit) x ceil(W / unit)`` image, ``n`` of them
    kept at random, duplicates dropped (as the code's voxelisation does).

    Returns:
        ``[S, 2]`` int64 coarse-level coordinates (x, y), ``S <= n``, sorted by (y, x); full-resolution
        positions are these times ``unit``.
    """
    cw, ch = width / unit, height / unit
    g = max(1, math.ceil(math.sqrt(n)))
    jx = torch.rand(g, g, generator=generator, dtype=torch.float64)
    jy = torch.rand(g, g, generator=generator, dtype=torch.float64)
    i = torch.arange(g, dtype=torch.float64)
    x = ((i[:, None] + jx) * (cw / g)).floor().clamp(0, math.ceil(cw) - 1)
    y = ((i[None, :] + jy) * (ch / g)).floor().clamp(0, math.ceil(ch) - 1)
    pts = torch.stack([x.reshape(-1), y.reshape(-1)], dim=1).long()
    pick = torch.randperm(g * g, generator=generator)[: min(n, g * g)]
    pts = torch.unique(pts[pick], dim=0)  # unique sorts lexicographically by (x, y)
    return pts[torch.argsort(pts[:, 1] * (1 << 20) + pts[:, 0])]


def initial_log_scaling(points: np.ndarray, log_max: float | None = SCALING_LOG_CLAMP[1]) -> torch.Tensor:
    """``[S, 4]`` the code's initial log scaling: ``log sqrt(mean squared distance to the 3 nearest
    neighbours)`` in coarse pixels, clamped to [1e-4, ``log_max``] (the code's 0.5; None: no upper clamp),
    repeated for the 4 values. The clamp suits the paper's dense seeds (about 1.3 coarse pixels apart);
    with a few thousand seeds on a 2K image it makes the first Gaussians far smaller than the seed spacing."""
    from scipy.spatial import cKDTree

    n = len(points)
    if n < 2:
        dist2 = np.ones(n)
    else:
        k = min(4, n)
        d, _ = cKDTree(points).query(points, k=k)
        dist2 = np.maximum((d[:, 1:] ** 2).mean(axis=1), 1e-7)
    logs = np.clip(np.log(np.sqrt(dist2)), SCALING_LOG_CLAMP[0], log_max)
    return torch.tensor(logs, dtype=torch.float32)[:, None].repeat(1, 4)


def seed_gaussians(
    positions: torch.Tensor,
    feature: torch.Tensor,
    scaling: torch.Tensor,
    offset: torch.Tensor,
    mlp_color: nn.Module,
    mlp_cov: nn.Module,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode seeds into Gaussians (shared by training, the encoder's preview and the decoder).

    Args:
        positions: ``[S, 2]`` seed positions (pixels of the level). feature: ``[S, F]``.
        scaling: ``[S, 4]`` pixels (offset scale x, y; Gaussian scale x, y). offset: ``[S, K, 2]``.
        mlp_color, mlp_cov: ``F -> 3K`` each.
    Returns:
        ``means [S K, 2]``, packed ``cov [S K, 3]``, ``colors [S K, 3]``.
    """
    s, k = offset.shape[:2]
    colors = mlp_color(feature).reshape(s * k, 3)
    scale_rot = mlp_cov(feature).reshape(s, k, 3)
    scales = scaling[:, None, 2:4] * torch.sigmoid(scale_rot[..., :2])
    means = positions[:, None, :] + offset * scaling[:, None, 0:2]
    cov = scale_rot_to_cov(scales.reshape(s * k, 2), scale_rot[..., 2].reshape(s * k))
    return means.reshape(s * k, 2), cov, colors


class SGIModel(nn.Module):
    """Seeds, their attributes, the two decoding MLPs and the context model.

    Args:
        seeds: ``[S, 2]`` int64 coarse coordinates; full-resolution positions are ``seeds * unit``.
        unit: ``2^(L - 1)``, the coarsest level's pixel in full-resolution pixels.
        height, width: full-resolution image size. feature_dim, k: ``F`` and ``K``.
        grid: the context's hash grid. generator: seeds every random initialisation.
        log_scaling_max: upper clamp of the initial log scaling (:func:`initial_log_scaling`).
    """

    def __init__(
        self,
        seeds: torch.Tensor,
        unit: int,
        height: int,
        width: int,
        feature_dim: int,
        k: int,
        grid: HashGridConfig,
        generator: torch.Generator,
        log_scaling_max: float | None = SCALING_LOG_CLAMP[1],
    ) -> None:
        super().__init__()
        self.height, self.width, self.unit, self.k, self.feature_dim = height, width, unit, k, feature_dim
        self.level = round(math.log2(unit))  # training starts at the coarsest level
        n = seeds.shape[0]
        self.register_buffer("seeds", seeds.long())
        self.feature = nn.Parameter(torch.zeros(n, feature_dim))
        self.offset = nn.Parameter(torch.zeros(n, k, 2))
        self.log_scaling = nn.Parameter(initial_log_scaling(seeds.double().numpy(), log_scaling_max))
        with torch.random.fork_rng(devices=[]):  # nn.Linear draws from the global generator
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            self.mlp_color = two_layer_mlp(feature_dim, feature_dim, 3 * k)
            self.mlp_cov = two_layer_mlp(feature_dim, feature_dim, 3 * k)
            self.context = ContextModel(grid, feature_dim, k, generator)
            for layer in self.mlp_color:  # the code: xavier_uniform(gain 0.01), zero bias for mlp_color
                if isinstance(layer, nn.Linear):
                    nn.init.xavier_uniform_(layer.weight, gain=0.01)
                    nn.init.zeros_(layer.bias)

    @property
    def num_seeds(self) -> int:
        return int(self.seeds.shape[0])

    @property
    def num_gaussians(self) -> int:
        return self.num_seeds * self.k

    def positions(self, level: int | None = None) -> torch.Tensor:
        """``[S, 2]`` seed positions in pixels of ``level`` (default: the current one)."""
        level = self.level if level is None else level
        return self.seeds.to(self.feature.dtype) * (self.unit / 2**level)

    def normalised_positions(self) -> torch.Tensor:
        """``[S, 2]`` seed positions in [0, 1] (the context model's input; independent of the level)."""
        return normalise(self.seeds * self.unit, self.height, self.width).to(self.feature.dtype)

    def scaling(self) -> torch.Tensor:
        """``[S, 4]`` the scaling in pixels of the current level."""
        return self.log_scaling.exp()

    def gaussians(self, feature=None, scaling=None, offset=None):
        """Decode (optionally noised) attributes at the current level; see :func:`seed_gaussians`."""
        return seed_gaussians(
            self.positions(),
            self.feature if feature is None else feature,
            self.scaling() if scaling is None else scaling,
            self.offset if offset is None else offset,
            self.mlp_color,
            self.mlp_cov,
        )

    @torch.no_grad()
    def to_finer_level(self) -> None:
        """Eq. 16: positions (implicitly, through the level) and scalings doubled."""
        if self.level <= 0:
            raise ValueError("already at full resolution")
        self.log_scaling.add_(math.log(2.0))
        self.level -= 1

    def level_size(self, level: int | None = None) -> tuple[int, int]:
        """``(H_l, W_l)`` of the pyramid level (each level halves, rounding up)."""
        level = self.level if level is None else level
        h, w = self.height, self.width
        for _ in range(level):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w


def normalise(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Full-resolution pixel positions ``[N, 2]`` to [0, 1] (x over W - 1, y over H - 1), float64."""
    scale = torch.tensor([max(width - 1, 1), max(height - 1, 1)], dtype=torch.float64, device=points.device)
    return points.to(torch.float64) / scale


BINOMIAL5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def gaussian_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Burt-Adelson pyramid: level ``l + 1`` is level ``l`` blurred by the 5-tap binomial kernel
    (reflect padding) and sampled at even pixels, so coarse pixel ``j`` sits on fine pixel ``2 j`` and the
    seed positions transfer by an exact factor of two.

    Args:
        image: ``[C, H, W]``. levels: ``L`` (1 = just the image).
    Returns:
        ``[level 0 (the image), level 1, ...]``, each ``[C, ceil(H / 2^l), ceil(W / 2^l)]``.
    """
    out = [image]
    kernel = torch.tensor(BINOMIAL5, dtype=image.dtype, device=image.device) / 16
    c = image.shape[0]
    for _ in range(levels - 1):
        x = out[-1][None]
        h, w = x.shape[-2:]
        if min(h, w) >= 3:
            x = F.pad(x, (2, 2, 0, 0), mode="reflect" if w > 2 else "replicate")
            x = F.conv2d(x, kernel.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
            x = F.pad(x, (0, 0, 2, 2), mode="reflect" if h > 2 else "replicate")
            x = F.conv2d(x, kernel.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)
        out.append(x[0, :, ::2, ::2].contiguous())
    return out
