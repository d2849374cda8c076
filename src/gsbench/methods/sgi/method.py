"""The ``sgi`` method: configuration, the represent task (fit) and the compress task."""

from __future__ import annotations

import torch

from ...gaussians import RenderOptions, render
from ..base import METHODS, Encoded, FitContext, Fitted, Method
from .config import SGICodecConfig, SGIConfig
from .hashgrid import hash_config
from .model import SGIModel, jittered_seeds
from .train import PyramidSchedule, PyramidTrainer


class SGIFitted(Fitted):
    """A fitted SGI model, rendered at full resolution from its unquantised attributes."""

    def __init__(self, model: SGIModel, options: RenderOptions, info: dict) -> None:
        self.model, self.options, self._info = model, options, info
        self.height, self.width = model.height, model.width

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        means, cov, colors = self.model.gaussians()
        return render(means, cov, colors, self.height, self.width, self.options)

    @property
    def num_gaussians(self) -> int:
        return self.model.num_gaussians

    @property
    def num_params(self) -> int:
        """Seed positions (2), feature, scaling (4), offsets (2K) per seed, plus the two decoding MLPs."""
        m = self.model
        per_seed = 2 + m.feature_dim + 4 + 2 * m.k
        mlps = sum(p.numel() for p in (*m.mlp_color.parameters(), *m.mlp_cov.parameters()))
        return m.num_seeds * per_seed + mlps

    def info(self) -> dict:
        return self._info


@METHODS.register("sgi")
class SGI(Method):
    """SGI (structured 2D Gaussians); options: :class:`.config.SGIConfig`, :class:`.config.SGICodecConfig`
    (docs/methods.md, ``sgi``).

    The budget is ``gaussians = seeds x K``: ``budget // K`` seeds are asked of the jittered grid.
    """

    name = "sgi"
    tasks = ("represent", "compress")
    config_class = SGIConfig
    codec_config_class = SGICodecConfig

    def steps(self) -> dict[str, float]:
        """Base quantisation steps at full resolution (``codec.q_*``; the code's 1, 1 px, 0.2)."""
        c = self.codec_config
        return {"feature": c.q_feature, "scaling": c.q_scaling, "offset": c.q_offset}

    def build_pyramid_fit(
        self, image: torch.Tensor, budget: int, ctx: FitContext
    ) -> tuple[SGIModel, PyramidTrainer]:
        """Seeds, model and trainer for ``image`` ``[3, H, W]`` and ``budget`` Gaussians."""
        cfg = self.config
        k, feature_dim, levels = cfg.gaussians_per_seed, cfg.feature_dim, cfg.levels
        _, height, width = image.shape
        unit = 2 ** (levels - 1)
        gen = torch.Generator().manual_seed(int(ctx.seed))
        seeds = jittered_seeds(max(1, int(budget) // k), height, width, unit, gen)
        grid = hash_config(seeds.shape[0], cfg.hash)
        clamp = cfg.init_log_scaling_max
        model = SGIModel(seeds, unit, height, width, feature_dim, k, grid, gen, clamp).to(ctx.device)
        iterations = int(self.train_cfg["iterations"])
        schedule = PyramidSchedule.build(iterations, levels, cfg.level_ends, cfg.noise_delays, cfg.rate_start)
        lrs = cfg.learning_rates()
        trainer = PyramidTrainer(
            model=model,
            image=image,
            schedule=schedule,
            lrs=lrs,
            q=self.steps(),
            lmbda=cfg.lmbda,
            rate_fraction=cfg.rate_fraction,
            ctx=ctx,
            lr_horizon=cfg.lr_decay_horizon,
        )
        return model, trainer

    def train(self, image: torch.Tensor, budget: int, ctx: FitContext) -> tuple[SGIModel, dict]:
        model, trainer = self.build_pyramid_fit(image, budget, ctx)
        torch.manual_seed(int(ctx.seed))  # the quantisation noise and the rate's seed sampling
        history = trainer.run()
        sched = trainer.schedule
        info = {
            "num_seeds": model.num_seeds,
            "gaussians_per_seed": model.k,
            "levels": sched.levels,
            "level_ends": sched.stage_end,
            "noise_from": sched.noise_from,
            "rate_from": sched.rate_from,
            "lmbda": trainer.lmbda,
            "hash_grid": {
                "resolutions": list(model.context.grid.config.resolutions),
                "table_log2": model.context.grid.config.table_log2,
                "features": model.context.grid.config.features,
            },
            "history": history,
        }
        return model, info

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> SGIFitted:
        """The paper's training (noise and rate term included); renders the unquantised attributes."""
        model, info = self.train(image, budget, ctx)
        return SGIFitted(model, ctx.render, info)

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
        """Train, then quantise with the context model and write the file (:mod:`.encode`)."""
        from .encode import encode_sgi

        model, info = self.train(image, budget, ctx)
        return encode_sgi(model, self.steps(), ctx, info)
