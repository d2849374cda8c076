"""The options of ``image_gs``: the ``method`` and ``codec`` nodes, checked (configs/method/image_gs.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ...errors import UserError
from .codec import RenderSpec
from .schedule import SCHEDULES


@dataclass(frozen=True)
class ImageGSConfig:
    """``method`` and ``codec`` nodes of ``image_gs`` (defaults: the paper; configs/method/image_gs.yaml)."""

    init: str = "saliency"  # saliency (image-gradient guided, Eq. 6) | random (uniform pixels)
    color_init: bool = True
    inverse_scale: bool = True
    topk_norm: bool = True
    no_norm: str = "sum"  # what topk_norm=false renders: sum (all Gaussians, Eq. 4) | topk_sum
    k: int = 10
    eps: float = float(np.float32(1e-4))  # float32, as the file stores it
    cutoff: bool = False  # Image-GS's kernel has no 1/255 cut-off (replaces render.cutoff)
    footprint: str = "pixel"  # pixel (shared semantics, Triton on CUDA) | tile (the official kernel)
    lambda_init: float = 0.3
    grad_power: float = 1.0
    init_scale: float = 5.0
    scale_min: float = 0.1
    lr_position: float = 5e-4
    lr_color: float = 5e-3
    lr_scale: float = 2e-3
    lr_rotation: float = 2e-3
    l1_weight: float = 1.0
    ssim_weight: float = 0.1
    progressive: bool = True
    initial_ratio: float = 0.5
    add_times: int = 4
    add_every: int = 500
    add_error_power: float = 1.0
    add_blur: bool = False
    add_color: str = "target"  # target | residual
    reset_adam: bool = True
    lod_prefix: bool = True
    schedule: str = "paper"  # paper: constant learning rates | code: plateau decay and early stop
    eval_every: int = 100  # code schedule: evaluation period (the code's eval_steps)
    decay_patience: int = 1000  # steps without improvement before a decay (check_decay_steps)
    decay_ratio: float = 10.0
    max_decays: int = 1  # training stops at the decay after this many (max_decay_times)
    decay_threshold: float = 1e-3
    bits: int = 16
    entropy: bool = False
    qat: bool = False

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> ImageGSConfig:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(cfg) - set(known) - {"name"})
        if unknown:
            raise UserError(f"unknown image_gs option(s) {unknown}; valid: {', '.join(known)}")
        try:
            c = cls(**{k: _convert(k, type(getattr(cls, k)), v) for k, v in cfg.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise UserError(f"image_gs: {exc}") from None
        checks = [
            (c.init in ("saliency", "random"), "method.init must be saliency or random"),
            (c.no_norm in ("sum", "topk_sum"), "method.no_norm must be sum or topk_sum"),
            (c.footprint in ("pixel", "tile"), "method.footprint must be pixel or tile"),
            (c.add_color in ("target", "residual"), "method.add_color must be target or residual"),
            (c.schedule in SCHEDULES, f"method.schedule must be one of {', '.join(SCHEDULES)}"),
            (c.eval_every >= 1 and c.decay_ratio > 0, "method.eval_every >= 1 and method.decay_ratio > 0"),
            (1 <= c.k <= 64, "method.k must be in 1..64"),
            (1 <= c.bits <= 16, "method.bits must be in 1..16"),
            (0 <= c.lambda_init <= 1, "method.lambda_init must be in [0, 1]"),
            (0 < c.initial_ratio <= 1, "method.initial_ratio must be in (0, 1]"),
            (c.add_times >= 0 and c.add_every >= 1, "method.add_times >= 0 and method.add_every >= 1"),
            (0 < c.scale_min <= c.init_scale, "method.scale_min must be in (0, init_scale]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise UserError(msg)
        return c

    @property
    def mode(self) -> str:
        return "topk_norm" if self.topk_norm else self.no_norm

    @property
    def spec(self) -> RenderSpec:
        return RenderSpec(self.inverse_scale, self.mode, self.k, self.eps, self.cutoff, self.footprint)


def _convert(key: str, kind: type, value: Any) -> Any:
    """A config value as the field's type; ``eps`` is rounded to float32 (what the file stores)."""
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ValueError(f"method.{key} must be true or false, got {value!r}")
        return value
    if kind is int and (isinstance(value, bool) or float(value) != int(value)):
        raise ValueError(f"method.{key} must be an integer, got {value!r}")
    return float(np.float32(value)) if key == "eps" else kind(value)
