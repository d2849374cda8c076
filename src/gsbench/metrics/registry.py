"""The metric registry: each metric's name, label, direction, unit, CompressAI key and how it is computed.

Each metric module registers its metrics when it is imported (``gsbench.metrics`` imports the built-in
ones), and every consumer reads this registry rather than a list of its own: the runner computes the
metrics a job names, the per-job tables and the W&B logger take their metric columns from it, and the
report builds its tidy table, summary, RD plots, BD tables and CompressAI export from it. A metric the
report was not told about therefore cannot exist.

A *derived* metric is computed from another metric's value (``ms_ssim_db`` from ``ms_ssim``): it is not
asked for by name; it is written right after its source whenever the source is computed.

This module imports nothing from gsbench but :mod:`gsbench.registry`, so the low layers (``columns``)
can read it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from ..registry import UnknownNameError

__all__ = ["REGISTRY", "Metric", "MetricRegistry", "register"]

Direction = Literal["higher", "lower"]
TASKS = ("represent", "compress")


@dataclass(frozen=True)
class Metric:
    """One metric and its metadata.

    Attributes:
        name: the key in records (``metrics.<name>``) and the column in every table.
        label: how plots and tables name it (``"MS-SSIM"``).
        direction: ``"higher"`` or ``"lower"`` is better.
        unit: ``"dB"`` or ``""`` (unitless).
        compute: ``fn(ref, rec, **options) -> float`` for a computed metric (3xHxW tensors; raise
            :class:`gsbench.metrics.MetricUnavailable` when it cannot be computed for an input).
        derived_from: for a derived metric, the metric whose value it transforms.
        derive: for a derived metric, ``fn(value of derived_from) -> float``.
        compressai_key: its key in CompressAI's result JSON (``"psnr-rgb"``); None: not exported.
        takes_weights: ``compute`` takes ``weights=`` (the job's ``metrics.lpips_weights``).
        order: position of its column in every table (built-ins 10..60; a new metric goes after them).
        printed: tasks whose end-of-job terminal table shows it (``results.csv`` always has it).
        headline: shown in ``summary.md`` (``summary.csv`` always has it).
        rd_plot: drawn against the rate in the report's RD figures.
        bd: a distortion axis of the BD tables (a higher-is-better metric on a dB-like scale).
    """

    name: str
    label: str
    direction: Direction
    unit: str = ""
    compute: Callable[..., float] | None = None
    derived_from: str | None = None
    derive: Callable[[float], float] | None = None
    compressai_key: str | None = None
    takes_weights: bool = False
    order: float = 100.0
    printed: tuple[str, ...] = TASKS
    headline: bool = False
    rd_plot: bool = False
    bd: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"metric {self.name!r}: direction must be 'higher' or 'lower'")
        if (self.compute is None) == (self.derived_from is None):
            raise ValueError(f"metric {self.name!r}: give either compute or derived_from (with derive)")
        if (self.derived_from is None) != (self.derive is None):
            raise ValueError(f"metric {self.name!r}: derived_from and derive go together")
        if self.bd and self.direction != "higher":
            raise ValueError(f"metric {self.name!r}: BD deltas need a higher-is-better metric")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def is_derived(self) -> bool:
        return self.derived_from is not None

    @property
    def axis_label(self) -> str:
        """``PSNR (dB)``; a unitless metric says which way is better when that is lower (``LPIPS (lower
        is better)``), as a reader of an RD plot assumes up is better."""
        if self.unit:
            return f"{self.label} ({self.unit})"
        return self.label if self.higher_is_better else f"{self.label} (lower is better)"

    @property
    def bd_label(self) -> str:
        """How the BD tables name its delta (``BD-PSNR (dB)``)."""
        return f"BD-{self.label}" + (f" ({self.unit})" if self.unit else "")


class MetricRegistry:
    """Metrics by name, iterated in table order: by ``order``, each derived metric right after its source."""

    def __init__(self) -> None:
        self._items: dict[str, Metric] = {}

    def register(self, metric: Metric) -> Metric:
        """Add ``metric``; a derived metric's source must be registered first. Returns ``metric``."""
        old = self._items.get(metric.name)
        if old is not None and old != metric:
            raise ValueError(f"metric {metric.name!r} is registered twice")
        if metric.derived_from is not None and metric.derived_from not in self._items:
            raise ValueError(f"metric {metric.name!r}: register {metric.derived_from!r} first")
        self._items[metric.name] = metric
        return metric

    def unregister(self, name: str) -> None:
        """Remove ``name`` and the metrics derived from it (a metric registered by a test goes again)."""
        for derived in self.derived_of(name):
            self._items.pop(derived.name, None)
        self._items.pop(name, None)

    def get(self, name: str) -> Metric:
        """The metric ``name``; :class:`~gsbench.registry.UnknownNameError` lists the valid names."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self.names())
            raise UnknownNameError(f"unknown metric {name!r}; valid names: {valid}") from None

    def computed(self) -> list[Metric]:
        """The metrics a job can ask for by name, in table order (no derived ones)."""
        return sorted((m for m in self._items.values() if not m.is_derived), key=lambda m: m.order)

    def derived_of(self, name: str) -> list[Metric]:
        """The metrics derived from ``name``, in registration order."""
        return [m for m in self._items.values() if m.derived_from == name]

    def __iter__(self) -> Iterator[Metric]:
        """Every metric in table order: each computed one followed by those derived from it."""
        for metric in self.computed():
            yield metric
            yield from self.derived_of(metric.name)

    def names(self, *, derived: bool = True) -> tuple[str, ...]:
        """Every metric's name in table order (``derived=False``: only those a job can ask for)."""
        return tuple(m.name for m in self if derived or not m.is_derived)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)


#: The one registry of the package.
REGISTRY = MetricRegistry()


def register(metric: Metric) -> Metric:
    """Register ``metric`` in :data:`REGISTRY` (call it at the end of the metric's module)."""
    return REGISTRY.register(metric)
