"""GaussianImage's Gaussians: the parameters of one fit and how they become means, covariances and colours.

See :mod:`.method` for the method and docs/methods.md for every choice.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...gaussians import RenderOptions, cholesky_to_cov, render, scale_rot_to_cov
from ...gaussians.params import cholesky_to_cov_legacy

VARIANTS = ("cholesky", "rs")


class GaussianImageModel(nn.Module):
    """The parameters of ``N`` Gaussians for an ``H x W`` image, initialised as the public code does."""

    def __init__(self, n: int, height: int, width: int, variant: str = "cholesky", seed: int = 0) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown GaussianImage variant {variant!r}; valid: {', '.join(VARIANTS)}")
        self.height, self.width, self.variant = height, width, variant
        gen = torch.Generator().manual_seed(seed)
        u = 2 * (torch.rand(n, 2, generator=gen) - 0.5)
        # rand can return exactly 0 -> atanh(-1) = -inf; nudge inside the open interval.
        self._xyz = nn.Parameter(torch.atanh(u.clamp(-1 + 1e-6, 1 - 1e-6)))
        if variant == "cholesky":
            self._cholesky = nn.Parameter(torch.rand(n, 3, generator=gen))
            self.register_buffer("cholesky_bound", torch.tensor([[0.5, 0.0, 0.5]]))
        else:
            self._scaling = nn.Parameter(torch.rand(n, 2, generator=gen))
            self._rotation = nn.Parameter(torch.rand(n, 1, generator=gen))
            self.register_buffer("scale_bound", torch.tensor([[0.5, 0.5]]))
        self._features_dc = nn.Parameter(torch.rand(n, 3, generator=gen))

    @property
    def num_gaussians(self) -> int:
        return self._xyz.shape[0]

    # The stored parameters, as the codec quantises them (the Parameters themselves, so gradients flow
    # through a quantised forward): names without the underscore are the public view of the raw values.
    @property
    def xyz(self) -> nn.Parameter:
        """``[N, 2]`` positions before the tanh (the image spans [-1, 1] after it)."""
        return self._xyz

    @property
    def cholesky(self) -> nn.Parameter:
        """``[N, 3]`` Cholesky factors before the fixed bound is added (``cholesky`` variant only)."""
        return self._cholesky

    @property
    def colors(self) -> nn.Parameter:
        """``[N, 3]`` the "weighted colours" as rendered."""
        return self._features_dc

    @torch.no_grad()
    def load_rs(
        self, xy: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor, colors: torch.Tensor
    ) -> None:
        """Set an ``rs`` model's Gaussians by inverting its parameterisation.

        Args:
            xy: ``[N, 2]`` positions in [-1, 1]; scale: ``[N, 2]`` std devs in px (``|s + 0.5|`` = scale,
                so scales of at least 0.5 round-trip); rotation: ``[N]`` angle as a fraction of 2 pi in
                (0, 1); colors: ``[N, 3]``.
        """
        n = xy.shape[0]
        self._xyz.copy_(torch.atanh(xy.clamp(-1 + 1e-6, 1 - 1e-6)))
        self._scaling.copy_(scale - self.scale_bound)
        self._rotation.copy_(torch.logit(rotation.reshape(n, 1).clamp(1e-6, 1 - 1e-6)))
        self._features_dc.copy_(colors)

    def gaussians(self, legacy_grad: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Means ``[N, 2]`` in pixels, packed covariances ``[N, 3]`` and colours ``[N, 3]``.

        ``legacy_grad``: differentiate the Cholesky variant's covariance as the official projection
        backward does (``render.legacy_cholesky_grad``); the values are the same either way.
        """
        xy = torch.tanh(self._xyz)
        size = torch.tensor([self.width, self.height], dtype=xy.dtype, device=xy.device)
        means = 0.5 * size * (xy + 1)  # the official projection maps [-1, 1] to [0, W] x [0, H]
        if self.variant == "cholesky":
            to_cov = cholesky_to_cov_legacy if legacy_grad else cholesky_to_cov
            cov = to_cov(self._cholesky + self.cholesky_bound)
        else:
            scale = torch.abs(self._scaling + self.scale_bound)
            theta = torch.sigmoid(self._rotation) * 2 * math.pi
            cov = scale_rot_to_cov(scale, theta)
        return means, cov, self._features_dc

    def render(self, options: RenderOptions | None = None) -> torch.Tensor:
        """The raw render ``[3, H, W]`` (not clamped)."""
        legacy = options is not None and options.legacy_cholesky_grad
        means, cov, colors = self.gaussians(legacy_grad=legacy)
        return render(means, cov, colors, self.height, self.width, options)
