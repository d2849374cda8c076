"""The method interface every row of a table goes through (Gaussian methods and, later, codecs)."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import UserError
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


@dataclass
class Encoded:
    """The output of :meth:`Method.compress`: a file's bytes and what the encoder knows about them.

    Attributes:
        data: the complete bitstream (what is written to disk and scored: bpp = len(data) * 8 / (H W)).
        num_gaussians: primitives in the file (0 for non-Gaussian codecs).
        bpp_payload: the paper's analytic bit count per pixel (None when the paper gives none).
        info: method-specific facts for the record (quantiser bits, entropy modes, history, ...).
        preview: renders the quantised model as the encoder holds it, ``[C, H, W]`` (tests compare it
            with the decoder's output); None for codecs without one.
    """

    data: bytes
    num_gaussians: int = 0
    bpp_payload: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    preview: Callable[[], torch.Tensor] | None = None


class Decoded(ABC):
    """What a decoder rebuilt from a file: something that renders the image."""

    height: int
    width: int
    num_gaussians: int = 0

    @abstractmethod
    def render(self) -> torch.Tensor:
        """``[C, H, W]`` decoded image (raw: metrics clamp it)."""


class Method(ABC):
    """A fitting method, configured from its ``method`` and ``train`` config nodes.

    ``budget_name`` says what the job's budget means: ``gaussians`` (the ``gaussians`` key) or, for
    classical codecs, ``quality`` (read from ``method.quality`` by :meth:`budget`).
    """

    name: str = ""
    budget_name: str = "gaussians"

    def __init__(
        self,
        method_cfg: Mapping[str, Any],
        train_cfg: Mapping[str, Any],
        codec_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg = dict(method_cfg)
        self.train_cfg = dict(train_cfg)
        self.codec_cfg = dict(codec_cfg or {})

    @abstractmethod
    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Fitted:
        """Fit ``image`` ``[3, H, W]`` (float32 in [0, 1], on ``ctx.device``) with ``budget`` Gaussians."""

    def budget(self, gaussians: int) -> int:
        """The budget of a job given the ``gaussians`` key (Gaussian methods: that number)."""
        return int(gaussians)

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
        """Fit ``image`` ``[3, H, W]`` and encode it into a bitstream (the ``compress`` task)."""
        can = [n for n in METHODS.names() if METHODS.get(n).compress is not Method.compress]
        raise UserError(
            f"method {self.name!r} has no compress task; use task=represent, or a method with a codec "
            f"({', '.join(can)})"
        )

    def decode(self, data: bytes, ctx: FitContext) -> Decoded:
        """Rebuild from the file's bytes alone; Gaussian methods read the gsbench container."""
        from ..codec import decode_bitstream  # the codec package imports methods' decoders lazily

        return decode_bitstream(data, ctx.device, ctx.render)


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


def get_method(
    name: str,
    method_cfg: Mapping[str, Any],
    train_cfg: Mapping[str, Any],
    codec_cfg: Mapping[str, Any] | None = None,
) -> Method:
    """Instantiate the method registered as ``name`` (``codec_cfg``: the ``codec`` node, if any)."""
    return METHODS.get(name)(method_cfg, train_cfg, codec_cfg)
