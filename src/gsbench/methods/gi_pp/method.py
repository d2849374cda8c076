"""GaussianImage++ (AAAI 2026): direct covariances, distortion-driven densification (D3) and a
content-aware filter (CAF), rendered by accumulated summation.

Paper variant (default, ``method.variant=paper``): ``N0 = M/2`` Gaussians at uniform random positions
with zero colour; every ``grow_every`` (5,000) iterations, while below the last iteration, add
``k = floor((M - N_t) / 2)`` Gaussians at the top-k pixels of the L1 distortion (summed over channels),
coloured from the target there. Each new Gaussian gets the filter variance ``s = min(HW / (alpha N_t),
300)`` with ``alpha = 9 pi`` and ``N_t`` the count after the addition; the stored covariance is
``Sigma + s I``. Every ``prune_every`` (100) iterations Gaussians whose stored covariance is not positive
definite are removed.

Code variant (``method.variant=code``, Sweethyh/GaussianImage_plus): growth ``k = min(1000, M - N_t)``
and the whole rest at iteration ``T - grow_every``; new colours are zero; Gaussians whose minor-axis 3-sigma
radius is under ``radius_clip`` (1 px) are not rendered (by the code's test, ``method.radius_clip_rule``).

Both variants, as the code (the paper is silent): the initial raw covariance is U[0, 1)^3 (the filter is
its only bound), new Gaussians get U[0, 1)^3 + (0.5, 0, 0.5) and those not positive definite before the
filter is added are dropped; growth reads the distortion of the render that the step trained on (before
its optimiser update); colours may pass through a sigmoid (``method.color_norm``, the code's
``--color_norm``). docs/methods.md lists every choice.
"""

from __future__ import annotations

import torch
from torch import nn

from ...gaussians import RenderOptions
from ..base import METHODS, FitContext, Method, ModelFitted
from ..loop import optimise
from ..resume import fit_checkpoint
from .config import GIPPCodecConfig, GIPPConfig
from .model import GaussianImagePPModel
from .train import GrowthTrainer


class GaussianImagePPFitted(ModelFitted):
    """A fitted GaussianImage++ model, rendered with its radius clip (code variant) and clip rule."""

    def __init__(
        self,
        model: GaussianImagePPModel,
        options: RenderOptions,
        radius_clip: float,
        info: dict,
        clip_rule: str = "official",
    ) -> None:
        super().__init__(model, options, info, radius_clip, clip_rule)
        self.radius_clip, self.clip_rule = radius_clip, clip_rule

    @property
    def num_params(self) -> int:
        return 8 * self.model.num_gaussians  # position 2 + covariance 3 + colour 3 (the filter is a buffer)


def color_norm_for(config: GIPPConfig, task: str) -> bool:
    """``method.color_norm``: true | false | auto (sigmoid colours for the codec, raw for represent: the
    code's README runs ``train.py`` without ``--color_norm`` for representation and with it for the codec)."""
    if config.color_norm == "auto":
        return task == "compress"
    return config.color_norm == "true"


@METHODS.register("gi_pp")
class GaussianImagePP(Method):
    """GaussianImage++; options: :class:`.config.GIPPConfig` and :class:`.config.GIPPCodecConfig`."""

    name = "gi_pp"
    tasks = ("represent", "compress")
    config_class = GIPPConfig
    codec_config_class = GIPPCodecConfig

    def build_growth_fit(
        self, image: torch.Tensor, budget: int, ctx: FitContext, iterations: int, color_norm: bool = False
    ):
        """Model, Adam + StepLR and the :class:`GrowthTrainer` of a fit of ``iterations`` steps."""
        _, height, width = image.shape
        model = GaussianImagePPModel(max(budget // 2, 1), height, width, ctx.seed, color_norm)
        model = model.to(ctx.device)
        optimizer, scheduler = self.optimizer(model)
        trainer = GrowthTrainer(model, image, self.config, budget, iterations, optimizer, ctx)
        return model, optimizer, scheduler, trainer

    def optimizer(self, model: nn.Module, lr: float | None = None):
        """Adam (eps 1e-15) at ``lr`` (default ``method.lr``) and a fresh StepLR, as the code builds them."""
        cfg = self.config
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr if lr is None else lr, eps=1e-15)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
        return optimizer, scheduler

    def fit_model(self, image: torch.Tensor, budget: int, ctx: FitContext, color_norm: bool):
        """The representation fit (``train.py``): ``(model, info)`` after the best snapshot is restored."""
        iterations = int(self.train_cfg["iterations"])
        model, optimizer, scheduler, trainer = self.build_growth_fit(
            image, budget, ctx, iterations, color_norm
        )
        checkpoint = fit_checkpoint(
            ctx, "fit", {"model": model, "generator": model.gen}, image,
            method=self.cfg, iterations=iterations, budget=budget, color_norm=color_norm,
        )  # fmt: skip
        history = optimise(
            trainer.step_forward, image, optimizer, scheduler, iterations, ctx, loss="l2",
            hooks=[trainer], checkpoint=checkpoint,
        )  # fmt: skip
        info = {
            "variant": trainer.variant,
            "color_norm": color_norm,
            "iterations": iterations,
            "growth": trainer.growth,
            "history": history,
        }
        if checkpoint is not None and checkpoint.resumed_from:
            info["resumed_from_step"] = checkpoint.resumed_from
            info["seconds_before_resume"] = checkpoint.seconds_before
        info.update(trainer.restore_best())
        return model, info

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> GaussianImagePPFitted:
        from .fit_cache import cached_fit

        cfg = self.config
        model, info = cached_fit(self, image, budget, ctx, color_norm_for(cfg, "represent"))
        radius_clip = cfg.radius_clip if info["variant"] == "code" else 0.0
        return GaussianImagePPFitted(model, ctx.render, radius_clip, info, cfg.radius_clip_rule)

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext):
        """Fit (or reuse a fit), warm-up, QAT and the bitstream: :func:`.codec.compress_gipp`."""
        from .codec import compress_gipp

        return compress_gipp(self, image, budget, ctx)
