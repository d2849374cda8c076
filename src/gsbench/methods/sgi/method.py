"""The ``sgi`` method: configuration, the represent task (fit) and the compress task."""

from __future__ import annotations

import torch

from ...gaussians import RenderOptions, render
from ..base import METHODS, Encoded, FitContext, Fitted, Method
from .hashgrid import hash_config
from .model import SGIModel, jittered_seeds
from .train import DEFAULT_LR, PyramidSchedule, PyramidTrainer


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
    """SGI (structured 2D Gaussians); keys in ``configs/method/sgi.yaml`` and docs/methods.md (``sgi``).

    The budget is ``gaussians = seeds x K``: ``budget // K`` seeds are asked of the jittered grid.
    """

    name = "sgi"
    tasks = ("represent", "compress")

    def steps(self) -> dict[str, float]:
        """Base quantisation steps at full resolution (``codec.q_*``; the code's 1, 1 px, 0.2)."""
        c = self.codec_cfg
        return {
            "feature": float(c.get("q_feature", 1.0)),
            "scaling": float(c.get("q_scaling", 1.0)),
            "offset": float(c.get("q_offset", 0.2)),
        }

    def build_pyramid_fit(
        self, image: torch.Tensor, budget: int, ctx: FitContext
    ) -> tuple[SGIModel, PyramidTrainer]:
        """Seeds, model and trainer for ``image`` ``[3, H, W]`` and ``budget`` Gaussians."""
        cfg = self.cfg
        k = int(cfg.get("gaussians_per_seed", 10))
        feature_dim = int(cfg.get("feature_dim", 50))
        levels = int(cfg.get("levels", 3))
        if not 1 <= levels <= 8 or not 1 <= k <= 64:
            raise ValueError(
                f"sgi: levels must be in 1..8 and gaussians_per_seed in 1..64 (got {levels}, {k})"
            )
        _, height, width = image.shape
        unit = 2 ** (levels - 1)
        gen = torch.Generator().manual_seed(int(ctx.seed))
        seeds = jittered_seeds(max(1, int(budget) // k), height, width, unit, gen)
        grid = hash_config(seeds.shape[0], cfg.get("hash"))
        clamp = cfg.get("init_log_scaling_max", 0.5)
        clamp = None if clamp is None else float(clamp)
        model = SGIModel(seeds, unit, height, width, feature_dim, k, grid, gen, clamp).to(ctx.device)
        iterations = int(self.train_cfg["iterations"])
        schedule = PyramidSchedule.build(
            iterations,
            levels,
            cfg.get("level_ends"),
            cfg.get("noise_delays"),
            float(cfg.get("rate_start", 0.8)),
        )
        lrs = {key: list(DEFAULT_LR[key]) for key in DEFAULT_LR}
        for key, value in dict(cfg.get("lr") or {}).items():
            if key not in lrs:
                raise ValueError(f"sgi: unknown learning-rate key {key!r}; valid: {', '.join(lrs)}")
            lrs[key] = [float(value), float(value)] if isinstance(value, int | float) else list(value)
        trainer = PyramidTrainer(
            model=model,
            image=image,
            schedule=schedule,
            lrs=lrs,
            q=self.steps(),
            lmbda=float(cfg.get("lmbda", 0.001)),
            rate_fraction=float(cfg.get("rate_fraction", 0.05)),
            ctx=ctx,
            lr_horizon=float(cfg.get("lr_decay_horizon", 2.0)),
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
