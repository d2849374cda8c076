"""Where configs live, the OmegaConf resolvers they use, and checks of group names before Hydra runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"
# Groups a user picks with GROUP=OPTION; hydra/launcher is Hydra's (its options come from plugins too).
CHECKED_GROUPS = ("method", "dataset", "task", "render", "metrics", "logger", "paths", "preset")
_OVERRIDE = re.compile(r"^[+~]*(?P<group>[a-z_/]+)=(?P<value>.*)$")


def data_dir() -> str:
    """Default data root: ``$GSBENCH_DATA``, else ``<repo>/data``, else ``../shared/data`` beside the repo."""
    env = os.environ.get("GSBENCH_DATA")
    if env:
        return env
    local, shared = REPO_ROOT / "data", REPO_ROOT.parent / "shared" / "data"
    if not local.exists() and shared.exists():
        return str(shared)
    return str(local)


def register_resolvers() -> None:
    """Register ``${gsbench_root:}`` and ``${gsbench_data:}`` (idempotent)."""
    if not OmegaConf.has_resolver("gsbench_root"):
        OmegaConf.register_new_resolver("gsbench_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("gsbench_data"):
        OmegaConf.register_new_resolver("gsbench_data", data_dir)


def apply_limits(cfg: DictConfig) -> None:
    """Make the config's ``limits`` the decoders' (the image loader reads ``limits.max_pixels`` itself)."""
    from .codec import Limits, set_limits

    node = OmegaConf.select(cfg, "limits", default=None) or {}
    kinds = {"max_pixels": int, "max_evals_per_pixel": int, "min_bits_per_pixel": float}
    values = {k: kind(node[k]) for k, kind in kinds.items() if node.get(k) is not None}
    if "max_evals_per_pixel" in values:  # one knob for both work bounds (per pixel, per bit of file)
        values["max_evals_per_bit"] = values["max_evals_per_pixel"]
    set_limits(Limits(**values))


def group_options(group: str) -> list[str]:
    """The option names of a config group (its YAML files, without extension)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def check_overrides(args: list[str]) -> None:
    """Raise :class:`UserError` (one line, listing valid names) for an unknown ``GROUP=OPTION``.

    Sweep values (``method=gi,jpeg``) are checked one by one; Hydra sweep syntax such as
    ``glob(*)`` or ``range(...)`` is left to Hydra.
    """
    if not CONFIG_DIR.is_dir():
        raise UserError(
            f"config folder {CONFIG_DIR} is missing; install gsbench from its repository "
            "with `pip install -e .`"
        )
    for arg in args:
        m = _OVERRIDE.match(arg)
        if not m or m["group"] not in CHECKED_GROUPS or "(" in m["value"]:
            continue
        valid = group_options(m["group"])
        for value in m["value"].split(","):
            if value and value != "null" and value not in valid:
                raise UserError(f"unknown {m['group']} {value!r}; valid names: {', '.join(valid)}")
