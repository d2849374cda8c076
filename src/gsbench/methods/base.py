"""The method interface every row of a table goes through (Gaussian methods and, later, codecs)."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..gaussians.render import RenderOptions
from ..registry import Registry

METHODS: Registry[type[Method]] = Registry("method")


class FitDiverged(RuntimeError):
    """The optimisation produced a non-finite loss or parameters."""


@dataclass
class FitContext:
    """What a method needs from the runner besides the image.

    Attributes:
        device: where to fit.
        seed: seeds every random draw of the fit.
        render: renderer options (backend, tiles, cut-off, legacy cap).
        log_every: iterations between PSNR log lines (0 = never).
        progress: whether to show a per-iteration progress bar.
        logger: receives ``(step, metrics)`` during the fit (e.g. W&B); may be None.
        label: a name for log lines (the image name).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    render: RenderOptions = field(default_factory=RenderOptions)
    log_every: int = 1000
    progress: bool = True
    logger: Callable[[int, dict[str, float]], None] | None = None
    label: str = ""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("gsbench.fit"))


class Fitted(ABC):
    """A fitted representation of one image."""

    height: int
    width: int

    @abstractmethod
    def render(self) -> torch.Tensor:
        """Decode to ``[C, H, W]`` (raw: metrics clamp it)."""

    @property
    @abstractmethod
    def num_gaussians(self) -> int:
        """Gaussians in the representation (0 for non-Gaussian methods)."""

    @property
    @abstractmethod
    def num_params(self) -> int:
        """Stored scalar parameters (trainable values, not buffers)."""

    def info(self) -> dict[str, Any]:
        """Extra method-specific facts for the record (e.g. the variant used)."""
        return {}


class Method(ABC):
    """A fitting method, configured from its ``method`` and ``train`` config nodes."""

    name: str = ""

    def __init__(self, method_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any]) -> None:
        self.cfg = dict(method_cfg)
        self.train_cfg = dict(train_cfg)

    @abstractmethod
    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Fitted:
        """Fit ``image`` ``[3, H, W]`` (float32 in [0, 1], on ``ctx.device``) with ``budget`` Gaussians."""


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for a peak of 1; 100 dB caps a perfect fit (JSON has no infinity)."""
    return 100.0 if mse <= 1e-10 else -10.0 * math.log10(mse)


def check_finite(loss: torch.Tensor, step: int, label: str) -> None:
    """Raise :class:`FitDiverged` when ``loss`` is NaN or infinite."""
    if not torch.isfinite(loss):
        raise FitDiverged(
            f"{label}: loss became {loss.item()} at iteration {step}; "
            "lower the learning rate or check the input image"
        )


def get_method(name: str, method_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any]) -> Method:
    """Instantiate the method registered as ``name``."""
    return METHODS.get(name)(method_cfg, train_cfg)
