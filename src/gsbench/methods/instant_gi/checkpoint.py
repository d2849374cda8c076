"""Checkpoints of the initialisation network: a ``torch.save`` dict of weights, config and data hash."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import torch

from ...errors import UserError
from .model import InitNet, NetConfig

FORMAT = "gsbench.instant_gi.init_net/1"
TRAIN_HINT = (
    "train one with `python -m gsbench.train_init --images ../shared/data/photos --out outputs/instant_gi` "
    "(GPU, under an hour; `--recipe cpu-tiny` for a minute-long smoke test on a CPU), see "
    "docs/methods_instant_gi.md"
)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_hash(files: list[Path], settings: dict[str, Any]) -> str:
    """One hash for a training set: each file's name and content hash, plus what was done to them."""
    digest = hashlib.sha256(repr(sorted(settings.items())).encode())
    for f in sorted(files, key=lambda p: p.name):
        digest.update(f"{f.name}:{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def save_checkpoint(path: str | Path, net: InitNet, **extra: Any) -> Path:
    """Write ``{"format", "model", "net_config", "created", **extra}`` atomically; returns the path.

    ``extra`` holds plain values (the training config, the data hash and file list, the history), so the
    file loads with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    payload = {
        "format": FORMAT,
        "model": state,
        "net_config": net.cfg.to_dict(),
        "created": time.time(),
        **extra,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path | None, device: torch.device | str = "cpu") -> tuple[InitNet, dict]:
    """The network (eval mode, on ``device``) and the checkpoint dict; :class:`UserError` if unusable."""
    if path is None or str(path) in ("", "None", "null"):
        raise UserError(
            f"method instant_gi needs a trained initialisation network: pass init.checkpoint=PATH; "
            f"{TRAIN_HINT}"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"init.checkpoint={path} does not exist; {TRAIN_HINT}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say so in one line
        raise UserError(
            f"init.checkpoint={path} is not a readable checkpoint "
            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(
            f"init.checkpoint={path} is not a gsbench instant_gi checkpoint (format {FORMAT}); {TRAIN_HINT}"
        )
    cfg = dict(ckpt["net_config"])
    cfg.update(dims=tuple(cfg["dims"]), depths=tuple(cfg["depths"]))
    net = InitNet(NetConfig(**cfg))
    net.load_state_dict(ckpt["model"])
    return net.to(device).eval(), ckpt
