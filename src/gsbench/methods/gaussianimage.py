"""GaussianImage (Zhang et al., ECCV 2024): 2D Gaussians rendered by accumulated summation.

Follows the public code (Xinjie-Q/GaussianImage, see docs/methods.md): 8 parameters per Gaussian in the
Cholesky variant (position through tanh, Cholesky factor plus a fixed [0.5, 0, 0.5] bound, a free
"weighted colour"), opacity fixed at 1, L2 loss on the clamped render, Adan at lr 1e-3, StepLR 20k/0.5.
The ``rs`` variant stores two scales ``|s + 0.5|`` and an angle ``sigmoid(r) 2 pi`` instead.
"""

from __future__ import annotations

import math

import torch
from pytorch_optimizer import Adan
from torch import nn

from ..gaussians import RenderOptions, cholesky_to_cov, render, scale_rot_to_cov
from ..gaussians.params import cholesky_to_cov_legacy
from .base import METHODS, FitContext, Fitted, Method
from .loop import optimise
from .resume import fit_checkpoint

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


class GaussianImageFitted(Fitted):
    """A fitted GaussianImage model plus the renderer options it was fitted with."""

    def __init__(self, model: GaussianImageModel, options: RenderOptions, history: list[dict]) -> None:
        self.model, self.options, self.history = model, options, history
        self.height, self.width = model.height, model.width
        self.resumed: dict = {}  # where a resumed fit went on from (empty: one uninterrupted run)

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        return self.model.render(self.options)

    @property
    def num_gaussians(self) -> int:
        return self.model.num_gaussians

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def info(self) -> dict:
        return {"variant": self.model.variant, "history": self.history, **self.resumed}


@METHODS.register("gi")
class GaussianImage(Method):
    """GaussianImage; config keys: ``variant`` (cholesky | rs), ``lr``, ``loss``, ``lr_step``, ``lr_gamma``.

    Both variants store 8 values per Gaussian.
    """

    name = "gi"
    tasks = ("represent", "compress")

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> GaussianImageFitted:
        _, height, width = image.shape
        model = GaussianImageModel(budget, height, width, self.cfg.get("variant", "cholesky"), ctx.seed)
        model = model.to(ctx.device)
        optimizer = Adan(model.parameters(), lr=float(self.cfg.get("lr", 1e-3)))
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer,
            step_size=int(self.cfg.get("lr_step", 20000)),
            gamma=float(self.cfg.get("lr_gamma", 0.5)),
        )
        loss = str(self.cfg.get("loss", "l2"))
        # the official forward clamps before the loss; with L2 the clamp runs fused with it (one pass)
        if loss == "l2":
            forward, loss = (lambda: model.render(ctx.render)), "l2_clamped"
        else:
            forward = lambda: model.render(ctx.render).clamp(0, 1)  # noqa: E731
        iterations = int(self.train_cfg["iterations"])
        checkpoint = fit_checkpoint(
            ctx, "fit", {"model": model}, image, method=self.cfg, iterations=iterations, budget=budget
        )
        history = optimise(
            forward, image, optimizer, scheduler, iterations, ctx, loss=loss, checkpoint=checkpoint
        )
        fitted = GaussianImageFitted(model, ctx.render, history)
        if checkpoint is not None and checkpoint.resumed_from:
            fitted.resumed = {
                "resumed_from_step": checkpoint.resumed_from,
                "seconds_before_resume": checkpoint.seconds_before,
            }
        return fitted

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext):
        """Fit, quantisation-aware fine-tuning and the bitstream: :func:`.gi_codec.compress_gi`."""
        from .gi_codec import compress_gi

        return compress_gi(self, image, budget, ctx)
