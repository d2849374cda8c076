"""Resumable fits: the training loop's state on disk, so an interrupted long fit goes on where it was.

A paper-setting fit takes hours on a CPU; a killed job (Ctrl-C, a cluster's time limit, a closed laptop)
used to lose all of it. With ``checkpoint_every`` seconds set (the default), a resumable fit writes
``<records>/<image>.<stage>.resume.pt`` that often, and once more on Ctrl-C after finishing the step it
is in; running the same command again loads it and continues from the next step. The file goes when
the fit ends. A resumed fit gives the same result as an uninterrupted one: the model, the optimiser,
the scheduler, every hook's state, the log so far and the random state are all restored, and the
renderers are deterministic.

The file holds a fingerprint of what determines the fit (config, budget, seed, the image's pixels); a
file whose fingerprint differs is ignored with a warning and replaced.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

VERSION = 1


def fingerprint(image: torch.Tensor, **facts: Any) -> str:
    """24 hex digits identifying a fit: the pixels of ``image`` ``[C, H, W]`` and ``facts`` (JSON-able)."""
    pixels = hashlib.sha256(image.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()
    blob = json.dumps({"pixels": pixels, **facts}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def pack(obj: Any) -> Any:
    """A picklable copy of ``obj``'s state (module, generator, or anything with ``state_dict``)."""
    if isinstance(obj, nn.Module):
        return {k: v.detach().cpu().clone() for k, v in obj.state_dict().items()}
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    return obj.state_dict()


def unpack(obj: Any, saved: Any) -> None:
    """Load ``saved`` into ``obj`` in place; module tensors may change row count (densified models)."""
    if isinstance(obj, nn.Module):
        for key, value in saved.items():
            *path, name = key.split(".")
            owner = obj.get_submodule(".".join(path)) if path else obj
            current = getattr(owner, name)
            value = value.to(current.device)
            if isinstance(current, nn.Parameter):
                current.data = value  # the same Parameter object: optimisers keep pointing at it
            else:
                owner._buffers[name] = value
    elif isinstance(obj, torch.Generator):
        obj.set_state(saved)
    else:
        obj.load_state_dict(saved)


class FitCheckpoint:
    """Saves and restores one fit's loop (see the module docstring).

    Args:
        path: the file.
        objects: what the loop does not know about but the fit needs back: models, generators,
            quantisers (``{name: object}``; see :func:`pack`).
        key: the fit's :func:`fingerprint`.
        every: seconds between saves.
    """

    def __init__(self, path: Path, objects: dict[str, Any], key: str, every: float) -> None:
        self.path, self.objects, self.key, self.every = Path(path), objects, key, float(every)
        self.last = time.monotonic()
        self.resumed_from = 0
        self.seconds_before = 0.0  # the loop's seconds up to the resumed save (fit time of earlier runs)

    def restore(self, state, hooks: Sequence[Any], ctx) -> int:
        """Load the file into ``state``, ``hooks`` and the objects if it matches; the last step it holds.

        A file that cannot be read or belongs to another fit is ignored (with a warning) before anything
        is changed; one that matches but cannot be loaded raises (the fit's objects may be half loaded).
        """
        if not self.path.is_file():
            return 0
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a damaged file (e.g. a full disk) must not stop the job: fit again
            ctx.log.warning("%s: cannot read %s (%s); starting afresh", ctx.label, self.path, exc)
            return 0
        stateful = [h for h in hooks if hasattr(h, "state_dict")]
        if saved.get("version") != VERSION or saved.get("key") != self.key:
            ctx.log.warning("%s: %s is from another fit; starting afresh", ctx.label, self.path)
            return 0
        if len(saved["hooks"]) != len(stateful) or set(saved["objects"]) != set(self.objects):
            ctx.log.warning("%s: %s holds another schedule; starting afresh", ctx.label, self.path)
            return 0
        try:
            for name, obj in self.objects.items():
                unpack(obj, saved["objects"][name])
            state.optimizer.load_state_dict(saved["optimizer"])
            if state.scheduler is not None:
                state.scheduler.load_state_dict(saved["scheduler"])
            for hook, hook_state in zip(stateful, saved["hooks"], strict=True):
                hook.load_state_dict(hook_state)
        except Exception as exc:
            raise RuntimeError(
                f"{ctx.label}: cannot resume from {self.path} ({exc}); delete it to fit from the start"
            ) from exc
        state.history[:] = saved["history"]
        state.step = saved["step"]
        torch.set_rng_state(saved["rng"])
        self.resumed_from = int(saved["step"])
        self.seconds_before = float(saved.get("seconds", 0.0))
        ctx.log.info("%s: resuming the fit at step %d from %s", ctx.label, self.resumed_from + 1, self.path)
        return self.resumed_from

    def maybe_save(self, state, hooks: Sequence[Any], clock) -> None:
        """Save when ``every`` seconds have passed since the last save (``clock()``: the fit's seconds)."""
        if time.monotonic() - self.last >= self.every:
            self.save(state, hooks, clock())

    def save(self, state, hooks: Sequence[Any], seconds: float = 0.0) -> None:
        """Write the state after step ``state.step`` atomically (a reader never sees half a file);
        ``seconds``: the fit's time so far (a resumed fit's clock goes on from it)."""
        blob = {
            "version": VERSION,
            "key": self.key,
            "step": state.step,
            "seconds": float(seconds),
            "objects": {name: pack(obj) for name, obj in self.objects.items()},
            "optimizer": state.optimizer.state_dict(),
            "scheduler": None if state.scheduler is None else state.scheduler.state_dict(),
            "hooks": [h.state_dict() for h in hooks if hasattr(h, "state_dict")],
            "history": list(state.history),
            "rng": torch.get_rng_state(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(blob, tmp)
        tmp.replace(self.path)
        self.last = time.monotonic()

    def discard(self) -> None:
        """Remove the file (the fit finished)."""
        self.path.unlink(missing_ok=True)


@contextmanager
def finish_step_on_interrupt():
    """Within the block, a first Ctrl-C only sets a flag (yielded as a list ``[bool]``) so the loop can
    finish its step and save before stopping; a second one interrupts at once. A no-op outside the
    main thread, where Python delivers no signals."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag[0] = True
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C stops at once

    previous = signal.signal(signal.SIGINT, handler) or signal.default_int_handler
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def fit_checkpoint(ctx, stage: str, objects: dict[str, Any], image: torch.Tensor, **facts: Any):
    """The :class:`FitCheckpoint` of ``stage`` of the fit of ``image`` under ``ctx`` (a
    :class:`~.base.FitContext`), or None when ``ctx.checkpoint_dir`` is unset. ``facts``: what else
    determines the fit (configs, budget); the seed, render options and device are added here."""
    if ctx.checkpoint_dir is None or ctx.checkpoint_every <= 0:
        return None
    key = fingerprint(
        image, stage=stage, seed=int(ctx.seed), render=repr(ctx.render), device=str(ctx.device), **facts
    )
    path = Path(ctx.checkpoint_dir) / f"{ctx.label or 'fit'}.{stage}.resume.pt"
    return FitCheckpoint(path, objects, key, ctx.checkpoint_every)
