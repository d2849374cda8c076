"""The options of ``coin``: the ``method`` node, checked (defaults: configs/method/coin.yaml).

COIN has no ``codec`` node: the file is the fitted net's float16 weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Options
from .codec import MAX_HIDDEN, MAX_LAYERS


@dataclass(frozen=True)
class CoinConfig(Options):
    """``method`` node of ``coin``: the net (``hidden`` x ``layers`` is the budget) and its training."""

    method = "coin"

    hidden: int  # width of each sine layer
    layers: int  # sine layers, then a linear layer to RGB
    w0: float  # SIREN frequency of the hidden layers
    w0_initial: float  # ... and of the first layer
    lr: float  # Adam
    keep_best: bool  # keep the best-PSNR weights of the second half (COIN's code)

    def check(self) -> None:
        # a decoder accepts these sizes only (gsbench.methods.coin.codec)
        self.require(
            1 <= self.hidden <= MAX_HIDDEN and 1 <= self.layers <= MAX_LAYERS,
            f"coin: method.hidden must be in 1..{MAX_HIDDEN} and method.layers in 1..{MAX_LAYERS}, "
            f"got {self.hidden} and {self.layers}",
        )
