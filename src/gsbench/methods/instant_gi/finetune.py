"""The fine-tuning stage: proposed Gaussians -> GaussianImage (rs) parameters -> a timed Adan fit.

Instant-GI fine-tunes with GaussianImage_RS (Adan lr 1e-3, StepLR 10,000 / 0.5, L2 on the clamped sum
render). gsbench's ``GaussianImageModel(variant="rs")`` stores ``atanh`` positions, scales through
``|s + 0.5|`` and angles through ``sigmoid(r) 2 pi``, so the proposal is written into it by inverting
those activations. One deliberate difference: the code's net-initialised model maps scales through
``max(s, 0.5)``; here the initial scales are floored at 0.5 px (what the code renders at step 0) and
then trained through ``|s + 0.5|`` like every gsbench ``rs`` fit.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from pytorch_optimizer import Adan

from ..base import FitContext, psnr_from_mse
from ..gi.model import GaussianImageModel
from ..loop import LOSSES, Hook, TrainState, train

MIN_SCALE = 0.5  # px: the code's clamp of net-initialised scales


def rs_model_from(
    xy: torch.Tensor,
    scale: torch.Tensor,
    rotation: torch.Tensor,
    color: torch.Tensor,
    height: int,
    width: int,
) -> GaussianImageModel:
    """A ``GaussianImageModel(variant="rs")`` whose Gaussians are the given ones.

    Args:
        xy: ``[N, 2]`` positions in [-1, 1]; scale: ``[N, 2]`` std devs in px; rotation: ``[N]`` angle as a
            fraction of 2 pi in (0, 1); color: ``[N, 3]``.
    Returns:
        the model on ``xy``'s device (no gradient history attached).
    """
    n = xy.shape[0]
    model = GaussianImageModel(n, height, width, variant="rs").to(xy.device)
    model.load_rs(xy, scale.clamp(min=MIN_SCALE), rotation, color)
    return model


class Clock:
    """Wall seconds since ``start``, device-synchronised, minus the time spent in :meth:`paused` blocks."""

    def __init__(self, device: torch.device, start: float | None = None) -> None:
        self.device, self.start, self.excluded = device, start or time.perf_counter(), 0.0

    def __call__(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.start - self.excluded

    def psnr(self, model: GaussianImageModel, target: torch.Tensor, ctx: FitContext) -> float:
        """PSNR of the current render; its own time is not counted (the code logs outside its clock)."""
        t0 = time.perf_counter()
        with torch.no_grad():
            value = psnr_from_mse(F.mse_loss(model.render(ctx.render).clamp(0, 1), target).item())
        self()  # synchronise before reading the clock again
        self.excluded += time.perf_counter() - t0
        return value


def finetune(
    model: GaussianImageModel,
    target: torch.Tensor,
    ctx: FitContext,
    clock: Clock,
    *,
    iterations: int,
    seconds: float | None = None,
    log_seconds: tuple[float, ...] = (),
    lr: float = 1e-3,
    lr_step: int = 10000,
    lr_gamma: float = 0.5,
    loss: str = "l2",
) -> tuple[list[dict], list[dict]]:
    """Fit ``model`` to ``target`` ``[3, H, W]`` for ``iterations`` steps, or until ``seconds`` on ``clock``.

    Returns:
        ``history``: ``{"step", "loss", "psnr", "seconds"}`` every ``ctx.log_every`` steps and at the last
        (PSNR of the render that step's gradient came from) and ``checkpoints``: ``{"label", "seconds",
        "step", "psnr"}`` for each of ``log_seconds`` when reached (the first step that ends past it) and
        ``"end"``; ``step`` counts the updates applied to the parameters that were scored.
    """
    optimizer = Adan(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step, gamma=lr_gamma)
    forward = lambda: model.render(ctx.render).clamp(0, 1)  # noqa: E731  (the code clamps before the loss)
    state = TrainState(forward, LOSSES[loss], target, optimizer, scheduler)
    marks = TimeMarks(model, target, ctx, clock, log_seconds, seconds)
    history = train(state, iterations, ctx, [marks], desc="finetune", clock=clock)
    now = clock()
    end = {"label": "end", "seconds": now, "step": state.step, "psnr": clock.psnr(model, target, ctx)}
    return history, [*marks.checkpoints, end]


class TimeMarks(Hook):
    """PSNR at wall-clock marks (recorded at the first step that ends past each), and the time-budget
    stop: the fit ends at the first step that ends past ``seconds``."""

    def __init__(self, model, target, ctx: FitContext, clock: Clock, marks, seconds: float | None) -> None:
        self.model, self.target, self.ctx, self.clock, self.seconds = model, target, ctx, clock, seconds
        self.pending = sorted(float(s) for s in marks)
        self.checkpoints: list[dict] = []

    def after_step(self, state: TrainState) -> None:
        now = self.clock()
        if self.pending and now >= self.pending[0]:
            psnr = self.clock.psnr(self.model, self.target, self.ctx)
            while self.pending and now >= self.pending[0]:
                mark = _label(self.pending.pop(0))
                self.checkpoints.append({"label": mark, "seconds": now, "step": state.step, "psnr": psnr})
        if self.seconds is not None and now >= self.seconds:
            state.stop = True


def _label(seconds: float) -> str:
    return f"{seconds:g}s" if math.isfinite(seconds) else "inf"
