"""Experiment loggers chosen by the ``logger`` group: ``none`` (default) or ``wandb`` (offline by default)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UserError
from .registry import Registry


class NullLogger:
    """Logs nothing."""

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record ``metrics`` (no-op)."""

    def finish(self) -> None:
        """Close the run (no-op)."""


class WandbLogger(NullLogger):
    """Weights & Biases; ``mode=offline`` unless the user logged in and chose ``online``."""

    def __init__(self, cfg: Mapping[str, Any], run_config: dict, output_dir: Path) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise UserError("logger=wandb needs the wandb package: pip install -e '.[wandb]'") from exc
        self._run = wandb.init(
            project=cfg.get("project", "gsbench"),
            entity=cfg.get("entity"),
            mode=cfg.get("mode", "offline"),
            group=cfg.get("group"),
            tags=list(cfg.get("tags") or []),
            config=run_config,
            dir=str(output_dir),
            reinit="finish_previous",
        )

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._run.log(dict(metrics), step=step)

    def finish(self) -> None:
        self._run.finish()


LOGGERS: Registry = Registry("logger")
LOGGERS.add("none", lambda cfg, run_config, output_dir: NullLogger())
LOGGERS.add("wandb", WandbLogger)


def make_logger(cfg: Mapping[str, Any], run_config: dict, output_dir: Path) -> NullLogger:
    """Build the logger named by ``cfg["name"]``."""
    return LOGGERS.get(str(cfg.get("name", "none")))(cfg, run_config, output_dir)
