"""GaussianImage++'s training schedule: D3 growth, pruning and the best snapshot.

See :mod:`.gaussianimage_pp` for the method and docs/methods.md for every choice.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ...gaussians.strategy import BestSnapshot, Hook
from ..base import FitContext, psnr_from_mse
from .config import GIPPConfig
from .model import (
    PARAMS,
    GaussianImagePPModel,
    edit_gaussians,
    filter_variance,
    positive_definite,
    setattr_tensor,
)


def growth_count(variant: str, budget: int, n: int, step: int, iterations: int, grow_every: int) -> int:
    """How many Gaussians D3 adds at ``step`` (0 when it is not a growth step)."""
    if grow_every <= 0 or step % grow_every or step >= iterations or n >= budget:
        return 0
    if variant == "paper":
        return (budget - n) // 2
    if step >= iterations - grow_every:  # the code's last growth step fills the budget
        return budget - n
    return min(1000, budget - n)


def growth_schedule(variant: str, budget: int, iterations: int, grow_every: int) -> list[tuple[int, int]]:
    """``[(step, count after growth)]`` assuming no pruning: the densification plan of a fit."""
    n, out = budget // 2, []
    for step in range(grow_every, iterations, grow_every) if grow_every > 0 else []:
        k = growth_count(variant, budget, n, step, iterations, grow_every)
        if k:
            n += k
            out.append((step, n))
    return out


class GrowthTrainer(Hook):
    """The D3 / pruning / snapshot state of one fit, as a hook of the training loop (:meth:`on_step`).

    Order within a step, as the code: the loop renders (:meth:`step_forward`, which keeps that render)
    and updates; then :meth:`on_step` prunes (every ``prune_every`` while ``step < prune_until``), checks
    the snapshot, and grows (every ``grow_every`` while ``step < grow_until``) from the kept render.
    ``extra_modules`` (the codec's quantisers) are saved and restored with the snapshot.
    """

    def __init__(
        self,
        model: GaussianImagePPModel,
        target: torch.Tensor,
        cfg: GIPPConfig,
        budget: int,
        iterations: int,
        optimizer: torch.optim.Optimizer,
        ctx: FitContext,
    ) -> None:
        self.model, self.target, self.cfg, self.budget = model, target, cfg, budget
        self.iterations, self.optimizer, self.ctx = iterations, optimizer, ctx
        self.variant = cfg.variant
        self.radius_clip = cfg.radius_clip if self.variant == "code" else 0.0
        self.clip_rule = cfg.radius_clip_rule
        self.grow_until = self.prune_until = iterations
        self.growth: list[dict[str, int]] = []
        self.snapshot = BestSnapshot(self.score, self.capture, self.load)
        self.step_offset = 0  # added to the loop's step (the QAT loop continues the warm-up's numbering)
        self.extra_modules: list[nn.Module] = []
        self.last_out: torch.Tensor | None = None
        self.forward = self.render  # replaced by the quantised forward during QAT

    def render(self) -> torch.Tensor:
        return self.model.render(self.ctx.render, self.radius_clip, self.clip_rule).clamp(0, 1)

    def step_forward(self) -> torch.Tensor:
        """The training render ``[3, H, W]``; kept for growth (the code grows from it)."""
        out = self.forward()
        self.last_out = out.detach()
        return out

    def after_step(self, state) -> None:
        self.on_step(state.step + self.step_offset)

    def on_step(self, step: int) -> None:
        """Prune, check the snapshot and grow after the update of (global) step ``step``."""
        cfg = self.cfg
        prune_every = cfg.prune_every
        if prune_every and step % prune_every == 0 and step < self.prune_until:
            keep = positive_definite(self.model.stored_cov().detach())
            if not bool(keep.all()):
                edit_gaussians(self.model, self.optimizer, keep=keep)
        every = cfg.snapshot_every
        if cfg.best_snapshot and (step % every == 0 or step == self.iterations):
            self.check_snapshot(step)
        grow_every = cfg.grow_every
        n = self.model.num_gaussians
        k = growth_count(self.variant, self.budget, n, step, self.iterations, grow_every)
        if k and step < self.grow_until:
            self.grow(k)
            after = self.model.num_gaussians
            self.growth.append({"step": step, "added": after - n, "num_gaussians": after})

    def check_snapshot(self, step: int) -> None:
        """Keep the current state (and the extra modules') if its PSNR is the best so far."""
        self.snapshot.check(step)

    @torch.no_grad()
    def score(self) -> float:
        return psnr_from_mse(F.mse_loss(self.forward(), self.target).item())

    def capture(self) -> dict:
        state = {name: getattr(self.model, name).detach().clone() for name in (*PARAMS, "filter_var")}
        return {"model": state, "extra": [copy.deepcopy(m.state_dict()) for m in self.extra_modules]}

    def load(self, saved: dict) -> None:
        for name, value in saved["model"].items():
            setattr_tensor(self.model, name, value)
        for module, state in zip(self.extra_modules, saved["extra"], strict=True):
            module.load_state_dict(state)

    @torch.no_grad()
    def grow(self, k: int) -> None:
        """Add up to ``k`` Gaussians at the top-k pixels of the L1 distortion of the last training render;
        new raw covariances that are not positive definite are dropped before the filter is added."""
        model, (_, height, width) = self.model, self.target.shape
        out = self.last_out if self.last_out is not None else self.forward()
        distortion = (out - self.target).abs().sum(0).reshape(-1)
        idx = torch.topk(distortion, min(k, distortion.numel())).indices
        cov = model.new_cov(len(idx)).to(model.cov.device)
        valid = positive_definite(cov)
        idx, cov = idx[valid], cov[valid]
        ys, xs = idx // width, idx % width
        means = torch.stack([xs, ys], dim=1).to(model.means.dtype)  # pixel centres sit at integers
        if self.variant == "paper":
            colors = model.raw_colors(self.target[:, ys, xs].T)
        else:
            colors = torch.zeros(len(idx), 3)
        n_after = model.num_gaussians + len(idx)
        extra = {
            "means": means,
            "cov": cov,
            "colors": colors.to(model.colors),
            "filter_var": torch.full((len(idx),), filter_variance(height, width, n_after)),
        }
        edit_gaussians(model, self.optimizer, extra=extra)

    def restore_best(self) -> dict:
        """Load the best snapshot (if kept), extra modules included; say which state the result is."""
        return self.snapshot.restore()

    def log_fields(self, state) -> dict:
        return {"num_gaussians": self.model.num_gaussians}

    def state_dict(self) -> dict:
        """What a resumed fit needs back (the model and its generator are saved by the loop's caller)."""
        keys = ("growth", "grow_until", "prune_until")
        return {**{k: getattr(self, k) for k in keys}, "best": self.snapshot.best}

    def load_state_dict(self, saved: dict) -> None:
        for key in ("growth", "grow_until", "prune_until"):
            setattr(self, key, saved[key])
        self.snapshot.best = saved["best"]
