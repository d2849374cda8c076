"""The options of ``sgi``: the ``method`` and ``codec`` nodes, checked (defaults: configs/method/sgi.yaml).

The nested ``lr`` and ``hash`` nodes merge key by key with the YAML's, so ``method.lr.offset=...`` or a
partial ``{"lr": {...}}`` keeps the other rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..options import Options
from .train import LR_KEYS


@dataclass(frozen=True)
class SGIConfig(Options):
    """``method`` node of ``sgi`` (the paper's and the code's values; docs/methods.md, ``sgi``)."""

    method = "sgi"

    gaussians_per_seed: int  # K
    feature_dim: int  # F
    init_log_scaling_max: float | None  # upper clamp of the initial log scaling; None: no clamp
    levels: int  # Gaussian pyramid levels L
    level_ends: tuple[float, ...] | None  # fractions of train.iterations; None: the code's
    noise_delays: tuple[float, ...] | None  # fractions after each level's start; None: the code's
    rate_start: float  # context model + rate term after this fraction
    rate_fraction: float  # share of seeds whose bits are estimated each step
    lmbda: float  # rate weight
    lr_decay_horizon: float  # decays run over this many times train.iterations
    lr: dict[str, Any]  # component -> rate or [initial, final] (log-linear)
    hash: dict[str, Any]  # the binary hash grid (gsbench.methods.sgi.hashgrid.hash_config)

    def check(self) -> None:
        k, levels = self.gaussians_per_seed, self.levels
        self.require(
            1 <= levels <= 8 and 1 <= k <= 64,
            f"sgi: levels must be in 1..8 and gaussians_per_seed in 1..64 (got {levels}, {k})",
        )
        unknown = sorted(set(self.lr) - set(LR_KEYS))
        self.require(not unknown, f"sgi: unknown learning-rate key(s) {unknown}; valid: {', '.join(LR_KEYS)}")

    def learning_rates(self) -> dict[str, list[float]]:
        """Component -> ``[initial, final]`` (one number: constant)."""
        return {
            key: [float(value), float(value)] if isinstance(value, int | float) else list(value)
            for key, value in self.lr.items()
        }


@dataclass(frozen=True)
class SGICodecConfig(Options):
    """``codec`` node of ``sgi``: quantisation steps at full resolution (scaling, offset halve per level)."""

    method = "sgi"
    node = "codec"

    q_feature: float
    q_scaling: float  # pixels
    q_offset: float

    def check(self) -> None:
        for key in ("q_feature", "q_scaling", "q_offset"):
            self.require(getattr(self, key) > 0, f"codec.{key} must be > 0, got {getattr(self, key)}")
