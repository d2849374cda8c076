"""The method interface every row of a table goes through (Gaussian methods and, later, codecs)."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch

from ..codec import decode_bitstream
from ..errors import UserError
from ..gaussians.render import RenderOptions
from ..registry import Registry

METHODS: Registry[type[Method]] = Registry("method")
TASK_NAMES = ("represent", "compress")  # the tasks a job can ask of a method (runner/tasks.py)


@runtime_checkable
class Representation(Protocol):
    """What a fit or a decoder gives back: an image in some parametric form that renders itself.

    :class:`Fitted` (a fit), :class:`Decoded` (a pixel or network decoder) and the Gaussian decoders'
    types all satisfy it, so the runner scores any of them alike.
    """

    height: int
    width: int

    @property
    def num_gaussians(self) -> int:
        """Gaussians in the representation (0 for non-Gaussian methods)."""
        ...

    @property
    def num_params(self) -> int:
        """Scalar parameters it holds (0 for decoded pixels: there is no model)."""
        ...

    def render(self) -> torch.Tensor:
        """``[C, H, W]`` image (raw: metrics clamp it)."""
        ...


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
        checkpoint_dir: where resumable fits keep their state (``<label>.<stage>.resume.pt``); None: off.
        checkpoint_every: seconds between two saves of that state.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    render: RenderOptions = field(default_factory=RenderOptions)
    log_every: int = 1000
    progress: bool = True
    logger: Callable[[int, dict[str, float]], None] | None = None
    label: str = ""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("gsbench.fit"))
    checkpoint_dir: Path | None = None
    checkpoint_every: float = 300.0


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


class ModelFitted(Fitted):
    """A fit that is a model rendering itself with the options it was fitted with (``model.render(
    options, *render_args)``, ``model.num_gaussians``, ``model.height``, ``model.width``); ``num_params``
    counts the model's parameters. ``facts`` is what :meth:`info` reports."""

    def __init__(self, model: Any, options: RenderOptions, facts: dict[str, Any], *render_args: Any) -> None:
        self.model, self.options, self.facts, self.render_args = model, options, facts, render_args
        self.height, self.width = model.height, model.width

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        return self.model.render(self.options, *self.render_args)

    @property
    def num_gaussians(self) -> int:
        return self.model.num_gaussians

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def info(self) -> dict[str, Any]:
        return dict(self.facts)


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
    """What a decoder rebuilt from a file: something that renders the image (a :class:`Representation`)."""

    height: int
    width: int
    num_gaussians: int = 0

    @abstractmethod
    def render(self) -> torch.Tensor:
        """``[C, H, W]`` decoded image (raw: metrics clamp it)."""

    @property
    @abstractmethod
    def num_params(self) -> int:
        """Scalar parameters of the decoded model (0 for pixels)."""


class Method(ABC):
    """A fitting method, configured from its ``method`` and ``train`` config nodes.

    A method declares, as class attributes the runner reads:

    - ``tasks``: what a job may ask of it; a method that implements :meth:`compress` lists
      ``compress`` (a test checks the two agree), a classical codec lists only ``compress``.
    - ``file_suffix``: the suffix of the file the ``compress`` task writes (``.gsb``: the gsbench container).
    - ``budget_name``: what the job's budget means: ``gaussians`` (the ``gaussians`` key), ``quality`` for
      classical codecs or ``params`` for COIN (worked out from the method's config by :meth:`budget`).
    """

    name: ClassVar[str] = ""
    tasks: ClassVar[tuple[str, ...]] = ("represent",)
    file_suffix: ClassVar[str] = ".gsb"
    budget_name: ClassVar[str] = "gaussians"
    # The frozen option dataclasses of the ``method`` and ``codec`` nodes (each method's config.py); built
    # with ``from_mapping`` on construction, so a bad option fails before any image is read.
    config_class: ClassVar[Any] = None
    codec_config_class: ClassVar[Any] = None

    def __init__(
        self,
        method_cfg: Mapping[str, Any],
        train_cfg: Mapping[str, Any],
        codec_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg = dict(method_cfg)
        self.train_cfg = dict(train_cfg)
        self.codec_cfg = dict(codec_cfg or {})
        self.config = self.config_class.from_mapping(self.cfg) if self.config_class else None
        codec_class = self.codec_config_class
        self.codec_config = codec_class.from_mapping(self.codec_cfg) if codec_class else None

    @abstractmethod
    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Fitted:
        """Fit ``image`` ``[3, H, W]`` (float32 in [0, 1], on ``ctx.device``) with ``budget`` Gaussians."""

    def budget(self, gaussians: int) -> int:
        """The budget of a job given the ``gaussians`` key (Gaussian methods: that number)."""
        return int(gaussians)

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
        """Fit ``image`` ``[3, H, W]`` and encode it into a bitstream (the ``compress`` task)."""
        raise UserError(
            f"method {self.name!r} has no compress task; use task=represent, or a method with a codec "
            f"({', '.join(methods_for_task('compress'))})"
        )

    def decode(self, data: bytes, ctx: FitContext) -> Representation:
        """Rebuild from the file's bytes alone; Gaussian methods read the gsbench container."""
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


def methods_for_task(task: str) -> list[str]:
    """Names of the registered methods whose ``tasks`` include ``task``, sorted.

    Read from the registry, so it lists every method the importing of :mod:`gsbench.methods` registered.
    """
    return [name for name in METHODS.names() if task in METHODS.get(name).tasks]


def get_method(
    name: str,
    method_cfg: Mapping[str, Any],
    train_cfg: Mapping[str, Any],
    codec_cfg: Mapping[str, Any] | None = None,
) -> Method:
    """Instantiate the method registered as ``name`` (``codec_cfg``: the ``codec`` node, if any)."""
    return METHODS.get(name)(method_cfg, train_cfg, codec_cfg)
