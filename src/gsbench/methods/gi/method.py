"""GaussianImage (Zhang et al., ECCV 2024): 2D Gaussians rendered by accumulated summation.

Follows the public code (Xinjie-Q/GaussianImage, see docs/methods.md): 8 parameters per Gaussian in the
Cholesky variant (position through tanh, Cholesky factor plus a fixed [0.5, 0, 0.5] bound, a free
"weighted colour"), opacity fixed at 1, L2 loss on the clamped render, Adan at lr 1e-3, StepLR 20k/0.5.
The ``rs`` variant stores two scales ``|s + 0.5|`` and an angle ``sigmoid(r) 2 pi`` instead.
"""

from __future__ import annotations

import torch
from pytorch_optimizer import Adan

from ...gaussians import RenderOptions
from ..base import METHODS, FitContext, Method, ModelFitted
from ..loop import optimise
from ..resume import fit_checkpoint
from .config import GICodecConfig, GIConfig
from .model import VARIANTS, GaussianImageModel

__all__ = ["VARIANTS", "GaussianImage", "GaussianImageFitted", "GaussianImageModel"]


class GaussianImageFitted(ModelFitted):
    """A fitted GaussianImage model plus the renderer options it was fitted with; ``info``: the variant,
    the training log and, for a resumed fit, where it went on from."""

    def __init__(self, model: GaussianImageModel, options: RenderOptions, history: list[dict]) -> None:
        super().__init__(model, options, {"variant": model.variant, "history": history})
        self.history = history


@METHODS.register("gi")
class GaussianImage(Method):
    """GaussianImage; options: :class:`.config.GIConfig` (``method``), :class:`.config.GICodecConfig`.

    Both variants store 8 values per Gaussian.
    """

    name = "gi"
    tasks = ("represent", "compress")
    config_class = GIConfig
    codec_config_class = GICodecConfig

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> GaussianImageFitted:
        _, height, width = image.shape
        cfg = self.config
        model = GaussianImageModel(budget, height, width, cfg.variant, ctx.seed).to(ctx.device)
        optimizer = Adan(model.parameters(), lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
        loss = cfg.loss
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
            fitted.facts.update(
                resumed_from_step=checkpoint.resumed_from, seconds_before_resume=checkpoint.seconds_before
            )
        return fitted

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext):
        """Fit, quantisation-aware fine-tuning and the bitstream: :func:`.codec.compress_gi`."""
        from .codec import compress_gi

        return compress_gi(self, image, budget, ctx)
