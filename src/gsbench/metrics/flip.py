"""LDR-FLIP (Andersson et al. 2020) through NVIDIA's ``flip-evaluator`` package."""

from __future__ import annotations

import numpy as np
import torch

from gsbench.metrics._common import MetricUnavailable, prepare_pair
from gsbench.metrics.registry import Metric, register

__all__ = ["flip"]


def _to_hwc(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.permute(1, 2, 0).cpu().numpy(), dtype=np.float32)


def flip(ref: torch.Tensor, rec: torch.Tensor) -> float:
    """Mean LDR-FLIP error, ``flip_evaluator.evaluate(ref, rec, "LDR")[1]``; lower is better.

    Both images are taken as sRGB-encoded (the package's LDR default), which is how the datasets are stored.
    The viewing condition is the package's default (0.7 m from a 0.7 m wide 3840-px monitor, ~67 pixels
    per degree), the one the FLIP paper and later work report with.

    Args:
        ref: 3xHxW reference in [0, 1].
        rec: 3xHxW raw render (clamped to [0, 1]).

    Returns:
        Mean FLIP in [0, 1] (0 for identical images).

    Raises:
        MetricUnavailable: ``flip_evaluator`` does not import.
    """
    ref, rec = prepare_pair(ref, rec)
    try:
        import flip_evaluator
    except ImportError as exc:  # an optional compiled wheel; the other metrics must still work without it
        raise MetricUnavailable(f"flip_evaluator does not import ({exc}); install flip-evaluator") from exc
    _, mean_error, _ = flip_evaluator.evaluate(_to_hwc(ref), _to_hwc(rec), "LDR", applyMagma=False)
    return float(mean_error)


# FLIP is printed for represent runs only: a compress run's terminal table is wide with rate columns.
register(Metric("flip", "FLIP", "lower", compute=flip, order=60, printed=("represent",)))
