"""The optimisation loop shared by the Gaussian methods: progress bar, periodic PSNR, NaN guard."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..gaussians.fused_loss import clamped_mse
from .base import FitContext, check_finite, psnr_from_mse

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l2": F.mse_loss,
    "l2_clamped": clamped_mse,  # L2 of the render clamped to [0, 1], fused in one pass on the CPU
    "l1": F.l1_loss,
}


def optimise(
    forward: Callable[[], torch.Tensor],
    target: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    iterations: int,
    ctx: FitContext,
    loss: str = "l2",
    on_step: Callable[[int], None] | None = None,
    extra_loss: Callable[[], torch.Tensor] | None = None,
) -> list[dict[str, float]]:
    """Run ``iterations`` steps of ``loss(forward(), target)``.

    Args:
        forward: renders the current image ``[C, H, W]`` (already clamped if the method clamps).
        target: ``[C, H, W]`` ground truth.
        optimizer, scheduler: stepped once per iteration (scheduler may be None).
        iterations: number of steps.
        ctx: progress, logging and the label used in messages.
        loss: a key of :data:`LOSSES`.
        on_step: called after each step with the 1-based iteration (densification hooks, ...).
        extra_loss: called after ``forward`` each step; its scalar is added to the loss (e.g. a VQ
            commitment term that ``forward`` computed).
    Returns:
        The log: one ``{"step", "loss", "psnr", "seconds"}`` dict per ``ctx.log_every`` steps and at the
        end; ``seconds`` is the wall time since the loop started (the PSNR's ``.item()`` synchronises).
    """
    loss_fn = LOSSES[loss]
    history: list[dict[str, float]] = []
    bar = tqdm(
        range(1, iterations + 1),
        desc=f"fit {ctx.label}".strip(),
        disable=not ctx.progress,
        leave=False,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    start = time.perf_counter()
    for step in bar:
        out = forward()
        value = loss_fn(out, target)
        if extra_loss is not None:
            value = value + extra_loss()
        check_finite(value, step, ctx.label)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if on_step is not None:
            on_step(step)
        if (ctx.log_every and step % ctx.log_every == 0) or step == iterations:
            with torch.no_grad():
                psnr = psnr_from_mse(F.mse_loss(out.detach().clamp(0, 1), target).item())
            entry = {"step": step, "loss": float(value.item()), "psnr": psnr}
            entry["seconds"] = time.perf_counter() - start
            history.append(entry)
            bar.set_postfix(psnr=f"{psnr:.2f}")
            ctx.log.info(
                "%s iter %d/%d loss %.6f psnr %.2f dB", ctx.label, step, iterations, value.item(), psnr
            )
            if ctx.logger is not None:
                ctx.logger(step, {"train/loss": entry["loss"], "train/psnr": psnr})
    return history
