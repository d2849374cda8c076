"""Image-GS's schedules: progressive addition, and the learning-rate schedule of the paper or the code.

The paper trains 5,000 steps at constant learning rates (``method.schedule=paper``). The public code
(``model.py``, ``optimize`` and ``_lr_schedule``; ``cfgs/default.yaml``) runs up to ``max_steps`` = 10,000
and, once every Gaussian has been added, evaluates PSNR and SSIM every ``eval_steps`` (100): when neither
improved on the best by more than ``100 decay_threshold`` dB and ``decay_threshold`` (both must improve),
the steps without improvement accumulate; after ``check_decay_steps`` (1,000) of them every learning
rate is divided by ``decay_ratio`` (10), and past ``max_decay_times`` (1) decays training stops.
``method.schedule=code`` reproduces this with ``train.iterations`` as ``max_steps`` (set it to 10,000).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

SCHEDULES = ("paper", "code")


@dataclass(frozen=True)
class AdditionSchedule:
    """Progressive addition: start with ``initial`` Gaussians, add ``n`` at step ``s`` for ``(s, n)``."""

    budget: int
    initial: int
    additions: tuple[tuple[int, int], ...]
    add_every: int
    rescaled: bool = False

    def counts(self) -> list[int]:
        out = [self.initial]
        for _, n in self.additions:
            out.append(out[-1] + n)
        return out


def plan_schedule(budget: int, iterations: int, cfg: Any) -> AdditionSchedule:
    """Start at ``ceil(initial_ratio N)``, add ``ceil((N - N0) / add_times)`` every ``add_every`` steps.

    When the additions would not all happen before the last iteration (``add_every * add_times >=
    iterations``), ``add_every`` becomes ``iterations // (add_times + 1)`` so short runs still reach the
    budget; with fewer than ``add_times + 1`` iterations training starts with the whole budget.
    """
    n0 = min(budget, max(1, math.ceil(cfg.initial_ratio * budget)))
    if not cfg.progressive or cfg.add_times == 0 or n0 >= budget:
        return AdditionSchedule(budget, budget, (), 0)
    every, rescaled = cfg.add_every, False
    if every * cfg.add_times >= iterations:
        every, rescaled = iterations // (cfg.add_times + 1), True
        if every < 1:
            return AdditionSchedule(budget, budget, (), 0, True)
    per = math.ceil((budget - n0) / cfg.add_times)
    adds, n = [], n0
    for i in range(1, cfg.add_times + 1):
        m = min(per, budget - n)
        if m > 0:
            adds.append((i * every, m))
            n += m
    return AdditionSchedule(budget, n0, tuple(adds), every, rescaled)


@dataclass
class PlateauDecay:
    """The code's plateau decay and early stop (see the module docstring).

    Attributes:
        every: evaluation period in steps (``eval_steps``).
        patience: steps without improvement before a decay (``check_decay_steps``).
        ratio: learning rates are divided by this (``decay_ratio``).
        max_decays: training stops at the decay after this many (``max_decay_times``).
        threshold: SSIM improvement needed; PSNR needs ``100 threshold`` dB (``decay_threshold``).
    """

    every: int = 100
    patience: int = 1000
    ratio: float = 10.0
    max_decays: int = 1
    threshold: float = 1e-3
    best_psnr: float = 0.0
    best_ssim: float = 0.0
    waited: int = 0
    decays: list[int] = field(default_factory=list)
    stopped_at: int | None = None

    def due(self, step: int, full: bool) -> bool:
        """Whether ``step`` evaluates: a multiple of ``every`` once the whole budget is present."""
        return full and step % self.every == 0

    def update(self, step: int, psnr: float, ssim: float, optimizer: torch.optim.Optimizer) -> bool:
        """Feed one evaluation; decays ``optimizer``'s learning rates when due. Returns True to stop."""
        if psnr <= self.best_psnr + 100 * self.threshold or ssim <= self.best_ssim + self.threshold:
            self.waited += self.every
            if self.waited >= self.patience:
                self.waited = 0
                if len(self.decays) >= self.max_decays:
                    self.stopped_at = step
                    return True
                self.decays.append(step)
                for group in optimizer.param_groups:
                    group["lr"] /= self.ratio
            return False
        self.best_psnr, self.best_ssim, self.waited = psnr, ssim, 0
        return False

    def facts(self) -> dict[str, Any]:
        return {"kind": "code", "decays": list(self.decays), "stopped_at": self.stopped_at}
