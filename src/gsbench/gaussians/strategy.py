"""Training strategies shared by the Gaussian methods, as hooks of the one training loop.

:class:`Hook` is the interface :func:`gsbench.methods.loop.train` calls; the strategies here hold no
method-specific code (the method passes what to score, capture and restore), so every method that keeps
a best state, or runs a fixed schedule, uses the same piece.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Hook:
    """A piece of a fit's schedule; each callback is a no-op unless overridden.

    ``state`` is the loop's :class:`~gsbench.methods.loop.TrainState` (``step``, ``out``, ``value``,
    ``optimizer``, ``forward``, ``target``, ``stop`` ...). A hook that holds state a resumed fit needs
    implements ``state_dict()`` / ``load_state_dict(d)``.
    """

    def before_step(self, state: Any) -> None:
        """Called before the step's render (level switches, learning-rate schedules)."""

    def after_step(self, state: Any) -> None:
        """Called after the update (densification, pruning, snapshots, time checks)."""

    def log_fields(self, state: Any) -> dict[str, Any]:
        """Extra fields of a log entry (and of its log line)."""
        return {}


class Every(Hook):
    """Calls ``fn(step)`` after the update of every step (a method's own per-step schedule)."""

    def __init__(self, fn: Callable[[int], None]) -> None:
        self.fn = fn

    def after_step(self, state: Any) -> None:
        self.fn(state.step)


class BestSnapshot(Hook):
    """Keeps the state with the best score (PSNR), checked every ``every`` steps and at step ``last``.

    Args:
        score: the current state's PSNR in dB (the method decides what it renders, e.g. quantised).
        capture: a copy of everything to restore (models, quantisers, codebooks).
        load: puts a captured copy back.
        every: steps between checks (the official codes check every 100 or every step).
        last: the last step, always checked (0: none).
        offset: added to the loop's step (a loop that continues another's numbering).
    """

    def __init__(
        self,
        score: Callable[[], float],
        capture: Callable[[], Any],
        load: Callable[[Any], None],
        every: int = 100,
        last: int = 0,
        offset: int = 0,
    ) -> None:
        self.score, self.capture, self.load = score, capture, load
        self.every, self.last, self.offset = max(1, int(every)), int(last), int(offset)
        self.best: tuple[float, int, Any] | None = None

    def after_step(self, state: Any) -> None:
        step = state.step + self.offset
        if step % self.every == 0 or step == self.last:
            self.check(step)

    def check(self, step: int) -> None:
        """Score the current state; keep it if it beats the best so far (ties keep the earlier one)."""
        psnr = float(self.score())
        if self.best is None or psnr > self.best[0]:
            self.best = (psnr, step, self.capture())

    def restore(self) -> dict[str, Any]:
        """Load the best state, if any; the facts for the record (which state the result is)."""
        if self.best is None:
            return {"snapshot": "final"}
        psnr, step, saved = self.best
        self.load(saved)
        return {"snapshot": "best", "snapshot_step": step, "snapshot_psnr": psnr}

    def reset(self) -> None:
        """Forget the best so far (a new stage scores a different thing)."""
        self.best = None

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.best = saved["best"]
