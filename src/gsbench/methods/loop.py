"""The one training loop every method runs: render, loss, update, then the method's hooks.

A method describes its fit as a :class:`TrainState` (what to render, the loss, the optimiser) and a list
of :class:`Hook` objects (densification, pruning, progressive addition, quantisation start, snapshots,
time checkpoints, level switches ...). :func:`train` owns what every fit shares: the progress bar, the
NaN guard, the periodic PSNR log, the W&B callback and the resumable on-disk checkpoint
(:mod:`.resume`).

Order within step ``s`` (1-based): every hook's :meth:`Hook.before_step`; ``out = forward()``;
``value = loss(out, target)``; the NaN guard; ``zero_grad``, ``backward``, ``optimizer.step``,
``scheduler.step``; every hook's :meth:`Hook.after_step` (a hook may swap the optimiser, the forward or
the target, or set ``state.stop``); the log entry (every ``ctx.log_every`` steps and at the last one);
the stop check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..gaussians.fused_loss import clamped_mse
from ..gaussians.strategy import Every, Hook
from .base import FitContext, check_finite, psnr_from_mse
from .resume import FitCheckpoint, finish_step_on_interrupt

__all__ = ["LOSSES", "Every", "Hook", "TrainState", "optimise", "train"]

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l2": F.mse_loss,
    "l2_clamped": clamped_mse,  # L2 of the render clamped to [0, 1], fused in one pass on the CPU
    "l1": F.l1_loss,
}


@dataclass
class TrainState:
    """What one step of a fit needs, and what it leaves for the hooks.

    Attributes:
        forward: renders the current image ``[C, H, W]`` (already clamped if the method clamps).
        loss: ``(out, target) -> scalar``.
        target: ``[C, H, W]`` ground truth (a hook may change it, e.g. a pyramid level).
        optimizer, scheduler: stepped once per step (scheduler may be None); hooks may replace them.
        step: the step being run (1-based), 0 before the first.
        out, value: the last step's render and loss (for hooks and the log).
        stop: set by a hook to end the fit after this step.
        history: the log entries so far.
    """

    forward: Callable[[], torch.Tensor]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    target: torch.Tensor
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    step: int = 0
    out: torch.Tensor | None = None
    value: torch.Tensor | None = None
    stop: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


def train(
    state: TrainState,
    iterations: int,
    ctx: FitContext,
    hooks: Sequence[Hook] = (),
    *,
    desc: str = "fit",
    clock: Callable[[], float] | None = None,
    checkpoint: FitCheckpoint | None = None,
) -> list[dict[str, Any]]:
    """Run up to ``iterations`` steps of ``state`` with ``hooks`` (see the module docstring).

    Args:
        state: the fit (its ``history`` receives the log entries).
        iterations: the number of steps.
        ctx: progress, logging and the label used in messages.
        hooks: called in order at each step.
        desc: the progress bar's prefix.
        clock: seconds since the fit started (default: wall time since this call); logged as ``seconds``.
        checkpoint: when given, the fit resumes from its file if one exists and saves to it periodically;
            a Ctrl-C then ends the current step, saves it and raises KeyboardInterrupt. The file goes
            when the loop ends.
    Returns:
        ``state.history``: one ``{"step", "loss", "psnr", <hook fields>, "seconds"}`` per ``ctx.log_every``
        steps and at the last step; the PSNR is that of the step's render, clamped to [0, 1].
    """
    first = 1
    if checkpoint is not None:
        first = checkpoint.restore(state, hooks, ctx) + 1
    start = time.perf_counter()
    before = checkpoint.seconds_before if checkpoint is not None else 0.0  # a resumed fit's earlier time
    clock = clock or (lambda: time.perf_counter() - start + before)
    bar = tqdm(
        range(first, iterations + 1),
        desc=f"{desc} {ctx.label}".strip(),
        disable=not ctx.progress,
        leave=False,
        mininterval=1.0,
        dynamic_ncols=True,
        initial=first - 1,
        total=iterations,
    )
    with finish_step_on_interrupt() if checkpoint is not None else nullcontext([False]) as interrupted:
        for step in bar:
            state.step = step
            for hook in hooks:
                hook.before_step(state)
            out = state.forward()
            value = state.loss(out, state.target)
            check_finite(value, step, ctx.label)
            state.optimizer.zero_grad(set_to_none=True)
            value.backward()
            state.optimizer.step()
            if state.scheduler is not None:
                state.scheduler.step()
            state.out, state.value = out, value
            for hook in hooks:
                hook.after_step(state)
            if (ctx.log_every and step % ctx.log_every == 0) or step == iterations:
                _log(state, iterations, ctx, hooks, clock(), bar)
            if checkpoint is not None:
                if interrupted[0]:  # Ctrl-C during this step: it is finished, so save it and stop
                    checkpoint.save(state, hooks, clock())
                    bar.close()
                    raise KeyboardInterrupt
                checkpoint.maybe_save(state, hooks, clock)
            if state.stop:
                break
    bar.close()
    if checkpoint is not None:
        checkpoint.discard()
    return state.history


@torch.no_grad()
def _log(state: TrainState, iterations: int, ctx: FitContext, hooks, seconds: float, bar) -> None:
    psnr = psnr_from_mse(F.mse_loss(state.out.detach().clamp(0, 1), state.target).item())
    loss = float(state.value.item())
    extra: dict[str, Any] = {}
    for hook in hooks:
        extra.update(hook.log_fields(state))
    state.history.append({"step": state.step, "loss": loss, "psnr": psnr, **extra, "seconds": seconds})
    bar.set_postfix(psnr=f"{psnr:.2f}", **{k: v for k, v in extra.items() if k == "num_gaussians"})
    tail = "".join(f" {k} {v:g}" if isinstance(v, float) else f" {k} {v}" for k, v in extra.items())
    ctx.log.info(
        "%s iter %d/%d loss %.6f psnr %.2f dB%s", ctx.label, state.step, iterations, loss, psnr, tail
    )
    if ctx.logger is not None:
        ctx.logger(state.step, {"train/loss": loss, "train/psnr": psnr})


def optimise(
    forward: Callable[[], torch.Tensor],
    target: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    iterations: int,
    ctx: FitContext,
    loss: str = "l2",
    hooks: Sequence[Hook] = (),
    checkpoint: FitCheckpoint | None = None,
) -> list[dict[str, Any]]:
    """:func:`train` for the common case: ``LOSSES[loss](forward(), target)`` (see :func:`train`)."""
    state = TrainState(forward, LOSSES[loss], target, optimizer, scheduler)
    return train(state, iterations, ctx, hooks, checkpoint=checkpoint)
