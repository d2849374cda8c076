"""The options of ``instant_gi``: the ``method`` node, checked (configs/method/instant_gi.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..loop import LOSSES
from ..options import Options

BUDGET_MODES = ("cap", "target", "free")


@dataclass(frozen=True)
class InstantGIConfig(Options):
    """``method`` node of ``instant_gi``; the network is ``checkpoint`` (Hydra: ``init.checkpoint``)."""

    method = "instant_gi"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"budget_mode": BUDGET_MODES, "loss": tuple(LOSSES)}

    checkpoint: str | None  # a network from ``python -m gsbench.train_init``; checked when it is loaded
    budget_mode: str  # cap | target | free
    kernel_size: int | None  # dithering cell in px; None: the checkpoint's
    lr: float  # Adan, as GaussianImage_RS
    lr_step: int
    lr_gamma: float
    loss: str

    def check(self) -> None:
        self.require_range("lr_step", 1)
        self.require_range("kernel_size", 0)
