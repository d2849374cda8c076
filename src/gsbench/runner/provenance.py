"""What every record says about where it came from: commit, package versions, device, config hash."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGES = (
    "gsbench",
    "torch",
    "numpy",
    "pillow",
    "hydra-core",
    "omegaconf",
    "pytorch-msssim",
    "pytorch-optimizer",
    "flip-evaluator",
    "scikit-image",
    "triton",
    "wandb",
    "constriction",
    "imagecodecs",
    "bjontegaard",
)
# Keys that change where or how a job runs, not what it computes: left out of the config hash.
UNHASHED = (
    "limits",
    "paths",
    "device",
    "logger",
    "progress",
    "sweep_report",
    "report_anchor",
    "log_every",
    "resume",
    "retry_failed",
    "hydra",
    "save_reconstructions",
    "checkpoint_every",
)
UNHASHED_DATASET = ("limit", "images", "download", "verify")
UNHASHED_CODEC = ("fit_cache",)  # where fits are cached: a reused fit is the same fit


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the repository gsbench runs from."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "-uno"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """Installed versions of the packages that can change results (None when absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["cuda"] = torch.version.cuda
    return out


def device_info(device: torch.device) -> dict[str, Any]:
    """The device by name: GPU model and memory, or the CPU and its thread count."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return {"type": "cuda", "name": props.name, "memory_gib": round(props.total_memory / 2**30, 1)}
    return {
        "type": device.type,
        "name": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }


def config_hash(cfg: dict[str, Any]) -> str:
    """Hash of the parts of a resolved config that determine a result (12 hex digits)."""
    kept = {k: v for k, v in cfg.items() if k not in UNHASHED}
    if isinstance(kept.get("dataset"), dict):
        kept["dataset"] = {k: v for k, v in kept["dataset"].items() if k not in UNHASHED_DATASET}
    if isinstance(kept.get("codec"), dict):
        kept["codec"] = {k: v for k, v in kept["codec"].items() if k not in UNHASHED_CODEC}
    blob = json.dumps(kept, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
