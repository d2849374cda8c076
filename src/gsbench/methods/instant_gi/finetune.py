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
from tqdm.auto import tqdm

from ..base import FitContext, check_finite, psnr_from_mse
from ..gaussianimage import GaussianImageModel
from ..loop import LOSSES

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
    with torch.no_grad():
        model._xyz.copy_(torch.atanh(xy.clamp(-1 + 1e-6, 1 - 1e-6)))
        model._scaling.copy_(scale.clamp(min=MIN_SCALE) - model.scale_bound)  # |s + 0.5| = scale
        model._rotation.copy_(torch.logit(rotation.reshape(n, 1).clamp(1e-6, 1 - 1e-6)))
        model._features_dc.copy_(color)
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
        ``history``: ``{"step", "loss", "psnr", "seconds"}`` every ``ctx.log_every`` steps (PSNR of the
        render that step's gradient came from) and ``checkpoints``: ``{"label", "seconds", "step",
        "psnr"}`` for each of ``log_seconds`` when reached (the first step that ends past it) and
        ``"end"``; ``step`` counts the updates applied to the parameters that were scored.
    """
    loss_fn = LOSSES[loss]
    optimizer = Adan(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step, gamma=lr_gamma)
    pending = sorted(float(s) for s in log_seconds)
    history: list[dict] = []
    checkpoints: list[dict] = []
    bar = tqdm(
        range(1, iterations + 1),
        desc=f"finetune {ctx.label}".strip(),
        disable=not ctx.progress,
        leave=False,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    step = 0
    for step in bar:
        out = model.render(ctx.render).clamp(0, 1)  # the code clamps before the loss
        value = loss_fn(out, target)
        check_finite(value, step, ctx.label)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        scheduler.step()
        now = clock()
        if pending and now >= pending[0]:
            psnr = clock.psnr(model, target, ctx)
            while pending and now >= pending[0]:
                checkpoints.append(
                    {"label": _label(pending.pop(0)), "seconds": now, "step": step, "psnr": psnr}
                )
        if ctx.log_every and step % ctx.log_every == 0:
            psnr = psnr_from_mse(F.mse_loss(out.detach(), target).item())
            history.append({"step": step, "loss": float(value.item()), "psnr": psnr, "seconds": now})
            bar.set_postfix(psnr=f"{psnr:.2f}")
            ctx.log.info(
                "%s iter %d loss %.6f psnr %.2f dB (%.2f s)", ctx.label, step, value.item(), psnr, now
            )
            if ctx.logger is not None:
                ctx.logger(step, {"train/loss": float(value.item()), "train/psnr": psnr})
        if seconds is not None and now >= seconds:
            break
    bar.close()
    now = clock()
    checkpoints.append({"label": "end", "seconds": now, "step": step, "psnr": clock.psnr(model, target, ctx)})
    return history, checkpoints


def _label(seconds: float) -> str:
    return f"{seconds:g}s" if math.isfinite(seconds) else "inf"
