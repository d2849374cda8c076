"""What a job does with one image, by ``task.name``: ``represent`` (fit and render) or ``compress``.

Each task returns the task-specific part of the record and the image to score, ``[C, H, W]``; the job
adds the metrics, the size and the provenance.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..methods import FitContext, Method
from ..registry import Registry
from .timing import time_render, timed

Task = Callable[[Any, Method, torch.Tensor, FitContext, Path], tuple[dict[str, Any], torch.Tensor]]
TASKS: Registry[Task] = Registry("task")


@TASKS.register("represent")
def represent(cfg, method: Method, image: torch.Tensor, ctx: FitContext, stem: Path):
    """Fit, render, time the render."""
    with timed(ctx.device) as fit_clock:
        fitted = method.fit(image, method.budget(int(cfg.gaussians)), ctx)
    with torch.no_grad():
        recon = fitted.render()
    timing = time_render(fitted.render, ctx.device, int(cfg.task.fps_warmup), int(cfg.task.fps_repeats))
    info = fitted.info()
    out = {
        "num_gaussians": fitted.num_gaussians,
        "num_params": fitted.num_params,
        # a resumed fit: this run's time plus the earlier runs' (method_info says from which step)
        "fit_seconds": fit_clock["seconds"] + float(info.get("seconds_before_resume", 0.0)),
        "render": timing,
        "method_info": info,
    }
    return out, recon


@TASKS.register("compress")
def compress(cfg, method: Method, image: torch.Tensor, ctx: FitContext, stem: Path):
    """Fit and encode, write the file, read it back, decode it from its bytes alone, score that.

    bpp is the size of the file on disk; ``bpp_payload`` is the paper's analytic count when the method
    has one. ``decode`` times file bytes to pixels (parse, entropy-decode, dequantise, render);
    ``render`` times the render of the already-decoded primitives alone.
    """
    _, height, width = image.shape
    with timed(ctx.device) as enc_clock:
        encoded = method.compress(image, method.budget(int(cfg.gaussians)), ctx)
    path = stem.with_suffix(method.file_suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(encoded.data)
    tmp.replace(path)
    data = path.read_bytes()  # score what is on disk, not what is in memory
    with timed(ctx.device) as dec_clock, torch.no_grad():
        decoded = method.decode(data, ctx)
        recon = decoded.render()
    warmup, repeats = int(cfg.task.fps_warmup), int(cfg.task.fps_repeats)
    bpp = path.stat().st_size * 8 / (height * width)
    payload = encoded.bpp_payload
    if payload is None and _is_pixels(decoded):  # a classical codec's file has no analytic count: it is
        payload = bpp  # the payload (so --rate bpp_payload still has its anchor curve)
    out = {
        "bitstream": path.name,
        "bitstream_bytes": path.stat().st_size,
        "bpp": bpp,
        "bpp_payload": payload,
        "num_gaussians": int(decoded.num_gaussians),
        "num_params": None,
        "encode_seconds": enc_clock["seconds"],
        "fit_seconds": enc_clock["seconds"],  # the encoder's fit (+ QAT): one column across tasks
        "decode_seconds": dec_clock["seconds"],
        "decode": time_render(
            lambda: method.decode(data, ctx).render(), ctx.device, warmup, repeats, "decode"
        ),
        # a pixel codec's decoded image is the pixels themselves: timing its "render" would time a copy
        "render": None if _is_pixels(decoded) else time_render(decoded.render, ctx.device, warmup, repeats),
        "method_info": encoded.info,
    }
    return out, recon


def _is_pixels(decoded: Any) -> bool:
    """Whether a decoder returned pixels (classical codecs) rather than primitives to render."""
    from ..methods.baselines import DecodedPixels

    return isinstance(decoded, DecodedPixels)
