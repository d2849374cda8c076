"""The options of ``gi``: the ``method`` and ``codec`` nodes, checked (defaults: configs/method/gi.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..loop import LOSSES
from ..options import Options
from .model import VARIANTS


@dataclass(frozen=True)
class GIConfig(Options):
    """``method`` node of ``gi`` (the public code's values; docs/methods.md)."""

    method = "gi"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"variant": VARIANTS, "loss": tuple(LOSSES)}

    variant: str  # cholesky | rs
    lr: float  # Adan
    lr_step: int  # StepLR step
    lr_gamma: float
    loss: str  # a key of gsbench.methods.loop.LOSSES; l2 runs clamped, as the official forward

    def check(self) -> None:
        self.require_range("lr_step", 1)


@dataclass(frozen=True)
class GICodecConfig(Options):
    """``codec`` node of ``gi`` (task=compress): quantisation-aware fine-tuning and the file."""

    method = "gi"
    node = "codec"

    entropy: bool  # entropy-code the quantised symbols when that is smaller
    qat_iterations: int | None  # None: train.iterations
    best_snapshot: bool
    snapshot_every: int
    lr: float  # Adan, model and Cholesky quantiser
    cholesky_bits: int
    rvq_stages: int
    rvq_codebook: int
    rvq_decay: float
    commitment: float

    def check(self) -> None:
        # the file stores stages and codebook size as u8 and the decoder accepts 1..8 stages
        for key, lo, hi in (("cholesky_bits", 1, 16), ("rvq_stages", 1, 8), ("rvq_codebook", 1, 255)):
            self.require_range(key, lo, hi)
        self.require_range("snapshot_every", 1)
        self.require_range("qat_iterations", 0)
