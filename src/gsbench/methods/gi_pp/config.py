"""The options of ``gi_pp``: the ``method`` and ``codec`` nodes, checked (configs/method/gi_pp.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..options import Options
from .model import CLIP_RULES, VARIANTS

PIPELINES = ("two_stage", "single")
COLOR_NORMS = ("auto", "true", "false")


@dataclass(frozen=True)
class GIPPConfig(Options):
    """``method`` node of ``gi_pp`` (the paper's values; ``variant=code`` follows the public code)."""

    method = "gi_pp"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "variant": VARIANTS,
        "radius_clip_rule": CLIP_RULES,
        "color_norm": COLOR_NORMS,
    }

    variant: str  # paper | code
    lr: float  # Adam (eps 1e-15)
    lr_step: int  # StepLR step
    lr_gamma: float
    grow_every: int  # D3 period (0: no growth)
    prune_every: int  # drop non-positive-definite covariances (0: never)
    radius_clip: float  # code variant: minor-axis 3-sigma radius (px) below which a Gaussian is not drawn
    radius_clip_rule: str  # official | exact
    color_norm: str  # auto | true | false (sigmoid colours; auto: compress yes, represent no)
    best_snapshot: bool
    snapshot_every: int

    @classmethod
    def convert(cls, key: str, kind: Any, value: Any) -> Any:
        if key == "color_norm" and isinstance(value, (bool, str)):
            value = str(value).lower()  # YAML true / false arrive as booleans
        return super().convert(key, kind, value)

    def check(self) -> None:
        self.require_range("lr_step", 1)
        self.require_range("snapshot_every", 1)
        self.require_range("grow_every", 0)
        self.require_range("prune_every", 0)


@dataclass(frozen=True)
class GIPPCodecConfig(Options):
    """``codec`` node of ``gi_pp`` (task=compress): the pipeline, its iterations, LSQ+ bits, the file."""

    method = "gi_pp"
    node = "codec"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"pipeline": PIPELINES}

    pipeline: str  # two_stage (fit, then warm-up + QAT from it) | single
    fit_cache: str | None  # a folder where representation fits are saved and reused
    iterations: int | None  # the codec stage's iterations; None: train.iterations
    warmup: int | None  # plain iterations before QAT; None: 12 % of the codec stage
    entropy: bool
    position_bits: int
    covariance_bits: int
    color_bits: int
    quantizer_lr: float

    def check(self) -> None:
        for key in ("position_bits", "covariance_bits", "color_bits"):
            self.require_range(key, 1, 16)
        self.require_range("iterations", 0)
        self.require_range("warmup", 0)
