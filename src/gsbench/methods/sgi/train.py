"""SGI's multi-scale fit (Sec. 3.3, Algorithm 1) with the public code's schedule as fractions of the run.

The code (``train_multi_scale.py`` / ``gaussian_renderer_decomp``, 15,000 iterations, L = 3) fits 1/4
resolution for iterations 1-3,000, 1/2 to 9,000, full to 15,000; it adds fixed-step quantisation noise on
(300, 3,000], (3,600, 9,000] and (9,600, 12,000], and after 12,000 uses the context model: adaptive steps,
noise, and the rate term ``lambda (bits per value + hash-grid bits / (S D))`` on a random 5 % of the seeds.
Here every boundary is a fraction of ``train.iterations`` (0.2 / 0.6 / 1.0, noise delays 0.02 / 0.04 /
0.04, rate from 0.8), so short CPU runs keep the shape of the schedule. Adam (eps 1e-15) with the code's
learning rates; the decaying ones follow ``exp(lerp(log lr0, log lr1, t / (horizon T)))`` with the code's
horizon of twice the run (30,000 steps for 15,000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ...gaussians import render
from ..base import FitContext
from ..loop import Hook, TrainState, train
from .context import adaptive_step, add_noise, base_steps, rate_terms
from .model import SGIModel, gaussian_pyramid

# the code's hard-coded level ends and noise starts (train_multi_scale.py, gaussian_renderer_decomp)
CODE_LEVEL_ENDS = {1: (1.0,), 2: (0.6, 1.0), 3: (0.2, 0.6, 1.0), 4: (0.1, 0.3, 0.6, 1.0)}
CODE_NOISE_DELAYS = {1: (0.1,), 2: (0.02, 0.04), 3: (0.02, 0.04, 0.04), 4: (0.02, 0.02, 0.04, 0.04)}
LR_KEYS = ("offset", "feature", "scaling", "mlp_color", "mlp_cov", "hash", "mlp_context")


@dataclass
class PyramidSchedule:
    """Iteration ranges (1-based, inclusive) of the levels, coarse to fine, and of noise and rate."""

    iterations: int
    levels: int
    stage_end: list[int]  # last iteration of each stage; stage s fits level L - 1 - s
    noise_from: list[int]  # noise on iterations > noise_from[s] in stage s (until rate_from)
    rate_from: int  # context model, adaptive steps and the rate term on iterations > rate_from

    @classmethod
    def build(cls, iterations: int, levels: int, level_ends=None, noise_delays=None, rate_start=0.8):
        ends = list(level_ends or CODE_LEVEL_ENDS.get(levels, [(i + 1) / levels for i in range(levels)]))
        delays = list(noise_delays or CODE_NOISE_DELAYS.get(levels, [0.02] * levels))
        if len(ends) != levels or len(delays) != levels or abs(ends[-1] - 1.0) > 1e-9:
            raise ValueError(
                f"level_ends / noise_delays need {levels} entries and level_ends must end at 1.0"
            )
        stage_end = [round(f * iterations) for f in ends]
        starts = [0, *stage_end[:-1]]
        noise_from = [s + round(d * iterations) for s, d in zip(starts, delays, strict=True)]
        return cls(iterations, levels, stage_end, noise_from, round(rate_start * iterations))

    def stage(self, step: int) -> int:
        """The stage of iteration ``step`` (0 = coarsest)."""
        return next(s for s, end in enumerate(self.stage_end) if step <= end)

    def mode(self, step: int) -> str:
        """``plain``, ``noise`` (fixed steps) or ``rate`` (context, adaptive steps, rate term)."""
        if step > self.rate_from:
            return "rate"
        return "noise" if step > self.noise_from[self.stage(step)] else "plain"


def log_lerp(lr: list[float], t: float) -> float:
    """The code's ``get_expon_lr_func`` (no delay): log-linear from ``lr[0]`` to ``lr[1]``, t in [0, 1]."""
    a, b = float(lr[0]), float(lr[1])
    if a <= 0 or b <= 0:
        return a * (1 - t) + b * t
    return math.exp(math.log(a) * (1 - t) + math.log(b) * t)


def make_optimizer(model: SGIModel, lrs: dict) -> torch.optim.Adam:
    """Adam (eps 1e-15, the code's) with one named group per component."""
    params = {
        "offset": [model.offset],
        "feature": [model.feature],
        "scaling": [model.log_scaling],
        "mlp_color": list(model.mlp_color.parameters()),
        "mlp_cov": list(model.mlp_cov.parameters()),
        "hash": list(model.context.grid.parameters()),
        "mlp_context": list(model.context.mlp.parameters()),
    }
    groups = [{"params": params[k], "lr": log_lerp(lrs[k], 0.0), "name": k} for k in LR_KEYS]
    return torch.optim.Adam(groups, eps=1e-15)


@dataclass
class PyramidTrainer(Hook):
    """Runs the multi-scale fit of ``model`` to ``image`` ``[3, H, W]``; :meth:`run` returns the history."""

    model: SGIModel
    image: torch.Tensor
    schedule: PyramidSchedule
    lrs: dict
    q: dict  # base steps at full resolution: feature, scaling, offset
    lmbda: float
    rate_fraction: float
    ctx: FitContext
    lr_horizon: float = 2.0
    history: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pyramid = gaussian_pyramid(self.image, self.schedule.levels)
        self.optimizer = make_optimizer(self.model, self.lrs)
        self.last_bits: dict = {}  # kept as tensors: converting every step would synchronise a GPU
        self.rate_term: torch.Tensor | None = None

    def forward(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Render at the current level with the step's quantisation proxy; the rate term or None."""
        m, mode = self.model, self.schedule.mode(step)
        feature, scaling, offset = m.feature, m.scaling(), m.offset
        rate = None
        if mode != "plain":
            q0 = base_steps(self.q, m.level)
            if mode == "noise":
                steps = {g: torch.tensor(q0[g], device=feature.device) for g in q0}
            else:
                context = m.context(m.normalised_positions())
                steps = {g: adaptive_step(q0[g], context[g][2]) for g in q0}
                rate = self.rate(context, q0)
            feature = add_noise(feature, steps["feature"])
            scaling = add_noise(scaling, steps["scaling"])
            offset = add_noise(offset, steps["offset"][..., None] if mode == "rate" else steps["offset"])
        h, w = m.level_size()
        means, cov, colors = m.gaussians(feature, scaling, offset)
        return render(means, cov, colors, h, w, self.ctx.render), rate

    def rate(self, context: dict, q0: dict) -> torch.Tensor:
        """``lambda (bits per value on a random share of the seeds + grid bits / (S D))``."""
        m = self.model
        pick = torch.rand(m.num_seeds, device=m.feature.device) <= self.rate_fraction
        if not bool(pick.any()):
            pick[torch.randint(m.num_seeds, (1,), device=pick.device)] = True
        chosen = {g: tuple(t[pick] for t in context[g]) for g in context}
        values = {
            "feature": m.feature[pick],
            "scaling": m.scaling()[pick],
            "offset": m.offset[pick].reshape(int(pick.sum()), -1),
        }
        per_value, _ = rate_terms(chosen, values, q0)
        dims = m.feature_dim + 4 + 2 * m.k
        grid_bits = m.context.grid.bits()
        self.last_bits = {"bits_per_value": per_value.detach(), "grid_bits": grid_bits}
        return self.lmbda * (per_value + grid_bits / (m.num_seeds * dims))

    def set_lr(self, step: int) -> None:
        t = min(step / max(self.lr_horizon * self.schedule.iterations, 1), 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = log_lerp(self.lrs[group["name"]], t)

    def run(self) -> list[dict]:
        """All iterations; level switches double positions and scalings (:meth:`SGIModel.to_finer_level`)."""
        target = self.pyramid[self.model.level]
        self.state = TrainState(self.step_forward, self.step_loss, target, self.optimizer)
        self.state.history = self.history
        train(self.state, self.schedule.iterations, self.ctx, [self])
        while self.model.level > 0:  # runs shorter than the number of levels still end at full resolution
            self.model.to_finer_level()
        return self.history

    def before_step(self, state: TrainState) -> None:
        """Move to the step's pyramid level (its target) and set the step's learning rates."""
        target_level = self.schedule.levels - 1 - self.schedule.stage(state.step)
        while self.model.level > target_level:
            self.model.to_finer_level()
        state.target = self.pyramid[self.model.level]
        self.set_lr(state.step)

    def step_forward(self) -> torch.Tensor:
        out, self.rate_term = self.forward(self.state.step)
        return out

    def step_loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.l1_loss(out, target)
        return loss if self.rate_term is None else loss + self.rate_term

    def log_fields(self, state: TrainState) -> dict:
        return {"level": self.model.level, **{k: float(v) for k, v in self.last_bits.items()}}
