"""A cache of finished GaussianImage++ representation fits, so the codec can start from one.

The official codec is two programs: ``train.py`` fits the representation and saves it,
``train_quantize.py`` loads that checkpoint. gsbench's equivalent: with ``codec.fit_cache=DIR`` set, every
``gi_pp`` representation fit (``task=represent``, or the first stage of ``task=compress``) is saved under
``DIR/gi_pp/<key>.pt`` and a later fit with the same key is loaded instead of run. The key hashes
everything that determines the fit: the image's pixels, the budget, the seed, the ``method`` node, the
effective colour activation, ``train.iterations``, the render options and the device type. The record says
whether a fit was reused (``fit.reused``) and from which file.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from ..base import FitContext
from ..resume import fingerprint
from .model import GaussianImagePPModel, setattr_tensor

TENSORS = ("means", "cov", "colors", "filter_var")


def fit_key(method, image: torch.Tensor, budget: int, ctx: FitContext, color_norm: bool) -> str:
    """24 hex digits identifying a fit of ``image`` ``[3, H, W]`` (see the module docstring)."""
    cfg = {k: v for k, v in method.cfg.items() if k != "color_norm"}
    return fingerprint(
        image,
        shape=list(image.shape),
        budget=int(budget),
        seed=int(ctx.seed),
        method=cfg,
        color_norm=bool(color_norm),
        iterations=int(method.train_cfg["iterations"]),
        render=dataclasses.asdict(ctx.render),
        device=torch.device(ctx.device).type,
    )


def cache_path(method, key: str) -> Path | None:
    """``DIR/gi_pp/<key>.pt`` for ``codec.fit_cache=DIR``; None when no cache is configured."""
    folder = method.codec_config.fit_cache
    if folder in (None, "", "null", "none"):
        return None
    return Path(str(folder)).expanduser() / method.name / f"{key}.pt"


def load_fit(path: Path, image: torch.Tensor, ctx: FitContext, color_norm: bool):
    """``(model, info)`` from a cached fit file."""
    saved = torch.load(path, map_location=ctx.device, weights_only=True)
    _, height, width = image.shape
    model = GaussianImagePPModel(1, height, width, ctx.seed, color_norm).to(ctx.device)
    for name in TENSORS:
        setattr_tensor(model, name, saved[name].to(ctx.device))
    model.gen.set_state(saved["generator"])  # later growth draws what a fresh fit's generator would
    info = json.loads(saved["info"])
    return model, info


def save_fit(path: Path, model: GaussianImagePPModel, info: dict[str, Any]) -> None:
    """Write atomically (a concurrent reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: getattr(model, name).detach().cpu().clone() for name in TENSORS}
    state["generator"] = model.gen.get_state()
    state["info"] = json.dumps(info, default=str)
    tmp = path.with_suffix(".pt.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def cached_fit(method, image: torch.Tensor, budget: int, ctx: FitContext, color_norm: bool):
    """``(model, info)``: the cached fit when one exists, else a new fit (saved when a cache is set).

    ``info["fit"]`` says which: ``{"reused": bool, "cache": path or None, "key": ...}``.
    """
    key = fit_key(method, image, budget, ctx, color_norm)
    path = cache_path(method, key)
    if path is not None and path.is_file():
        try:
            model, info = load_fit(path, image, ctx, color_norm)
        except Exception as exc:  # a damaged cache file: fit again and overwrite it
            ctx.log.warning("%s: cached fit %s unreadable (%s); fitting again", ctx.label, path, exc)
        else:
            ctx.log.info("%s: reusing the representation fit %s", ctx.label, path)
            info["fit"] = {"reused": True, "cache": str(path), "key": key}
            return model, info
    model, info = method.fit_model(image, budget, ctx, color_norm)
    if path is not None:
        save_fit(path, model, info)
    info["fit"] = {"reused": False, "cache": None if path is None else str(path), "key": key}
    return model, info
