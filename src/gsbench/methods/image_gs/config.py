"""The options of ``image_gs``: the ``method`` and ``codec`` nodes, checked (configs/method/image_gs.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..options import Options, yaml_defaults
from .codec import RenderSpec
from .schedule import SCHEDULES


@dataclass(frozen=True)
class ImageGSConfig(Options):
    """``method`` and ``codec`` nodes of ``image_gs``, merged (defaults: configs/method/image_gs.yaml, the
    paper's); the compress-task keys ``bits``, ``entropy`` and ``qat`` come from the ``codec`` node."""

    method = "image_gs"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "init": ("saliency", "random"),
        "no_norm": ("sum", "topk_sum"),
        "footprint": ("pixel", "tile"),
        "add_color": ("target", "residual"),
        "schedule": SCHEDULES,
    }

    init: str  # saliency (image-gradient guided, Eq. 6) | random (uniform pixels)
    color_init: bool
    inverse_scale: bool
    topk_norm: bool
    no_norm: str  # what topk_norm=false renders: sum (all Gaussians, Eq. 4) | topk_sum
    k: int
    eps: float  # rounded to float32, as the file stores it
    cutoff: bool  # Image-GS's kernel has no 1/255 cut-off (replaces render.cutoff)
    footprint: str  # pixel (shared semantics, Triton on CUDA) | tile (the official kernel)
    lambda_init: float
    grad_power: float
    init_scale: float
    scale_min: float
    lr_position: float
    lr_color: float
    lr_scale: float
    lr_rotation: float
    l1_weight: float
    ssim_weight: float
    progressive: bool
    initial_ratio: float
    add_times: int
    add_every: int
    add_error_power: float
    add_blur: bool
    add_color: str  # target | residual
    reset_adam: bool
    lod_prefix: bool
    schedule: str  # paper: constant learning rates | code: plateau decay and early stop
    eval_every: int  # code schedule: evaluation period (the code's eval_steps)
    decay_patience: int  # steps without improvement before a decay (check_decay_steps)
    decay_ratio: float
    max_decays: int  # training stops at the decay after this many (max_decay_times)
    decay_threshold: float
    bits: int
    entropy: bool
    qat: bool

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The YAML's ``method`` and ``codec`` nodes together (compress-task keys live in ``codec``)."""
        return {**yaml_defaults("image_gs", "method"), **yaml_defaults("image_gs", "codec")}

    @classmethod
    def convert(cls, key: str, kind: Any, value: Any) -> Any:
        out = super().convert(key, kind, value)
        return float(np.float32(out)) if key == "eps" else out  # what the file stores

    def check(self) -> None:
        checks = [
            (self.eval_every >= 1, "method.eval_every must be >= 1"),
            (self.decay_ratio > 0, "method.decay_ratio must be > 0"),
            (1 <= self.k <= 64, "method.k must be in 1..64"),
            (1 <= self.bits <= 16, "method.bits must be in 1..16"),
            (0 <= self.lambda_init <= 1, "method.lambda_init must be in [0, 1]"),
            (0 < self.initial_ratio <= 1, "method.initial_ratio must be in (0, 1]"),
            (self.add_times >= 0 and self.add_every >= 1, "method.add_times >= 0 and method.add_every >= 1"),
            (0 < self.scale_min <= self.init_scale, "method.scale_min must be in (0, init_scale]"),
        ]
        for ok, msg in checks:
            self.require(ok, msg)

    @property
    def mode(self) -> str:
        return "topk_norm" if self.topk_norm else self.no_norm

    @property
    def spec(self) -> RenderSpec:
        return RenderSpec(self.inverse_scale, self.mode, self.k, self.eps, self.cutoff, self.footprint)

