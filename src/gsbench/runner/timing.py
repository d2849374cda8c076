"""Timing with device synchronisation: wall clocks for fits, median-of-many for renders."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(device: torch.device):
    """Context manager yielding a dict whose ``"seconds"`` is set, synchronised, on exit."""
    box: dict[str, float] = {}
    synchronize(device)
    start = time.perf_counter()
    try:
        yield box
    finally:
        synchronize(device)
        box["seconds"] = time.perf_counter() - start


def time_render(
    fn: Callable[[], object], device: torch.device, warmup: int = 3, repeats: int = 20, prefix: str = "render"
) -> dict:
    """Median wall time of ``fn`` over ``repeats`` synchronised runs after ``warmup`` untimed ones.

    Returns:
        ``{"<prefix>_seconds_median", "<prefix>_seconds_min", "<prefix>_fps", "<prefix>_repeats"}``.
    """
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(max(1, repeats)):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        f"{prefix}_seconds_median": med,
        f"{prefix}_seconds_min": min(times),
        f"{prefix}_fps": 1.0 / med if med > 0 else None,
        f"{prefix}_repeats": len(times),
    }
