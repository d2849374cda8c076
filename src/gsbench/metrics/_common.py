"""Shared input handling for the metrics: shape checks and clamping of raw renders."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["MetricUnavailable", "full_fp32_convs", "prepare_pair"]


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed for this input (image too small, optional package missing, ...).

    :func:`gsbench.metrics.compute_metrics_with_notes` turns it into ``None`` plus a note; genuine bugs
    raise other exceptions and are not swallowed.
    """


def prepare_pair(ref: torch.Tensor, rec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (reference, render) pair and return float32 copies on ``ref``'s device.

    Args:
        ref: 3xHxW reference in [0, 1].
        rec: 3xHxW raw render; it may leave [0, 1] and is clamped to it, as the papers evaluate.

    Returns:
        ``(ref, rec)``, both 3xHxW float32 on ``ref.device``, ``rec`` clamped to [0, 1].

    Raises:
        ValueError: wrong shapes.
        MetricUnavailable: the render holds NaN or inf (a diverged fit); clamping would hide NaN
            only partly, and a number computed from it would be meaningless.
    """
    if ref.ndim != 3 or ref.shape[0] != 3:
        raise ValueError(f"ref must be 3xHxW, got shape {tuple(ref.shape)}")
    if rec.shape != ref.shape:
        raise ValueError(f"rec shape {tuple(rec.shape)} differs from ref shape {tuple(ref.shape)}")
    ref = ref.detach().to(dtype=torch.float32)
    rec = rec.detach().to(device=ref.device, dtype=torch.float32)
    n_bad = int((~torch.isfinite(rec)).sum())
    if n_bad:
        raise MetricUnavailable(f"render holds {n_bad} non-finite values")
    return ref, rec.clamp(0.0, 1.0)


@contextlib.contextmanager
def full_fp32_convs(device: torch.device) -> Iterator[None]:
    """Turn off cuDNN's TF32 convolutions on CUDA for the duration (a no-op elsewhere).

    PyTorch lets cuDNN run float32 convolutions in TF32 by default; its 10-bit mantissa moves SSIM and
    LPIPS in the 4th decimal, which is the precision papers report them at. The user's setting is restored.
    """
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous
