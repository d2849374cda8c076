"""Image quality metrics for (reference, render) pairs.

Every metric takes ``ref`` and ``rec`` as 3xHxW float tensors on any device, ``ref`` in [0, 1] and ``rec`` a
raw render that is clamped to [0, 1] first, as the papers evaluate. Higher is better for PSNR/SSIM/MS-SSIM,
lower for LPIPS/FLIP.

=============  ==========================================================================================
``psnr``       10 log10(1/MSE) of the clamped float render; capped at 100 dB (identical images give 100.0)
``psnr_8bit``  the same for the render rounded to 8 bits, round(clamp(rec)*255)/255: what a user sees
``ssim``       pytorch_msssim SSIM, 11-px Gaussian window (sigma 1.5), data range 1
``ms_ssim``    pytorch_msssim MS-SSIM, 5 scales; ``None`` when min(H, W) < 161. Its results also carry
               ``ms_ssim_db`` = -10 log10(1 - ms_ssim) (CompressAI's plotting scale, capped at 100 dB)
``lpips``      LPIPS-Alex v0.1 (plain-torch reimplementation of the official network and weights)
``flip``       mean LDR-FLIP via flip-evaluator; ``None`` when that package does not import
=============  ==========================================================================================

Each metric module registers its metrics, with their metadata (label, direction, unit, CompressAI key,
where they are shown), in :data:`REGISTRY` (:mod:`gsbench.metrics.registry`); the runner, the per-job
tables, the loggers and the report all read it. Adding a metric is one module in this package, imported
(and so registered) with the package (docs/extending.md).

Results are plain floats (finite, so they go to JSON as they are) or ``None``. A metric that cannot be
computed for an input raises :class:`MetricUnavailable`; :func:`compute_metrics_with_notes` turns that into
``None`` and a human-readable note, :func:`compute_metrics` drops the notes. A render holding NaN/inf gives
``None`` for every metric, with a note. A missing LPIPS weight file is not such a case: it raises
``FileNotFoundError`` so that a benchmark does not quietly lose a column.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch

# Importing the submodules registers their metrics. They are imported as modules, not their same-named
# functions: binding e.g. ``lpips`` the function here would shadow the submodule, and
# ``import gsbench.metrics.lpips as m`` would then return the function.
from gsbench.metrics import flip, lpips, psnr, ssim  # noqa: F401
from gsbench.metrics._common import MetricUnavailable
from gsbench.metrics.lpips import fetch_lpips_alex_weights
from gsbench.metrics.psnr import PSNR_CAP_DB
from gsbench.metrics.registry import REGISTRY, Metric, register

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "PSNR_CAP_DB",
    "REGISTRY",
    "Metric",
    "MetricFn",
    "MetricUnavailable",
    "compute_metrics",
    "compute_metrics_with_notes",
    "fetch_lpips_alex_weights",
    "register",
]


def _import_metric_modules() -> None:
    """Import every public module of this package: a metric module registers itself by being there, so
    adding a metric needs no edit here."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name != "registry":
            importlib.import_module(f"{__name__}.{info.name}")


_import_metric_modules()

#: ``fn(ref, rec) -> float`` with ref/rec 3xHxW; ``lpips`` also takes the keyword ``weights``.
MetricFn = Callable[..., float]


class _ComputeFunctions(Mapping[str, MetricFn]):
    """``name -> compute function`` of every metric a job can ask for, read live from the registry."""

    def __getitem__(self, name: str) -> MetricFn:
        metric = REGISTRY.get(name) if name in REGISTRY else None
        if metric is None or metric.compute is None:
            raise KeyError(name)
        return metric.compute

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY.names(derived=False))

    def __len__(self) -> int:
        return len(REGISTRY.names(derived=False))


#: ``name -> compute function`` of the registered metrics (derived ones have none).
METRICS: Mapping[str, MetricFn] = _ComputeFunctions()

#: Every metric registered when the package was imported: what a call without names computes. (A job
#: computes what its config names; configs/metrics/default.yaml names the built-in ones.)
DEFAULT_METRICS: tuple[str, ...] = tuple(METRICS)


def compute_metrics_with_notes(
    ref: torch.Tensor,
    rec: torch.Tensor,
    names: Sequence[str] = DEFAULT_METRICS,
    *,
    lpips_weights: str | Path | None = None,
) -> tuple[dict[str, float | None], list[str]]:
    """Compute the named metrics and say why any of them is ``None``.

    Args:
        ref: 3xHxW reference in [0, 1], any device.
        rec: 3xHxW raw render (clamped to [0, 1] by every metric), moved to ``ref``'s device.
        names: metrics of :data:`REGISTRY` (not derived ones), in the order wanted in the result.
        lpips_weights: LPIPS weight file (passed to every metric that ``takes_weights``); ``None`` searches
            as :func:`gsbench.metrics.lpips.resolve_lpips_weights` describes.

    Returns:
        ``(values, notes)``: ``values`` maps each name to a float or ``None``, each followed by the metrics
        derived from it (``"ms_ssim_db"`` right after ``"ms_ssim"``); ``notes`` holds one
        ``"<name>: <reason>"`` per ``None``.

    Raises:
        ValueError: an unknown metric name, or ref/rec of the wrong shapes.
        FileNotFoundError: LPIPS asked for and no weight file found.
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid names: {', '.join(METRICS)}")
    values: dict[str, float | None] = {}
    notes: list[str] = []
    for name in dict.fromkeys(names):  # drop repeats, keep order
        metric = REGISTRY.get(name)
        kwargs = {"weights": lpips_weights} if metric.takes_weights else {}
        try:
            value: float | None = METRICS[name](ref, rec, **kwargs)
        except MetricUnavailable as exc:
            value = None
            notes.append(f"{name}: {exc}")
        values[name] = value
        for derived in REGISTRY.derived_of(name):
            assert derived.derive is not None  # Metric checks it
            values[derived.name] = None if value is None else derived.derive(value)
    return values, notes


def compute_metrics(
    ref: torch.Tensor,
    rec: torch.Tensor,
    names: Sequence[str] = DEFAULT_METRICS,
    *,
    lpips_weights: str | Path | None = None,
) -> dict[str, float | None]:
    """:func:`compute_metrics_with_notes` without the notes: ``{name: float | None}`` for 3xHxW ref/rec."""
    values, _ = compute_metrics_with_notes(ref, rec, names, lpips_weights=lpips_weights)
    return values
