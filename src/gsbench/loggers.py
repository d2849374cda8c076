"""Experiment loggers chosen by the ``logger`` group: ``none`` (default) or ``wandb`` (offline by default)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .columns import record_values, task_columns
from .errors import UserError
from .registry import Registry


class NullLogger:
    """Logs nothing."""

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record ``metrics`` (no-op)."""

    def log_record(self, record: Mapping[str, Any]) -> None:
        """Record an image's final figures (no-op)."""

    def log_images(self, name: str, image, recon) -> None:
        """Record the reconstruction ``recon`` ``[3, H, W]`` and its error map against ``image`` (no-op)."""

    def finish(self) -> None:
        """Close the run (no-op)."""


class WandbLogger(NullLogger):
    """Weights & Biases; ``mode=offline`` unless the user logged in and chose ``online``."""

    def __init__(self, cfg: Mapping[str, Any], run_config: dict, output_dir: Path) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise UserError("logger=wandb needs the wandb package: pip install -e '.[wandb]'") from exc
        self._wandb, self._max_images = wandb, int(cfg.get("max_images", 4))
        self._table_rows: list[list[Any]] = []
        self._table_columns: list[str] = []
        self._images_logged = 0
        self._run = wandb.init(
            project=cfg.get("project", "gsbench"),
            entity=cfg.get("entity"),
            mode=cfg.get("mode", "offline"),
            group=cfg.get("group") or sweep_group(),
            tags=list(cfg.get("tags") or []),
            config=run_config,
            dir=str(output_dir),
            reinit="finish_previous",
        )

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        # Per-iteration values of several images share one run: wandb's own step counter keeps them
        # monotonic and "train/step" is the x axis to plot against.
        self._run.log(dict(metrics), step=step)

    def log_record(self, record: Mapping[str, Any]) -> None:
        task = str(record.get("task") or "represent")
        values = record_values(record)
        finals = {k: values.get(k) for k in task_columns(task)}
        finals.update({k: v for k, v in (record.get("metrics") or {}).items() if k not in finals})
        self._run.log(
            {"image": record["image"], **{f"final/{k}": v for k, v in finals.items() if v is not None}}
        )
        # the results table has the columns of results.csv for this task (set by the first record)
        self._table_columns = self._table_columns or ["image", *task_columns(task)]
        self._table_rows.append([record["image"], *[finals.get(k) for k in self._table_columns[1:]]])

    def log_images(self, name: str, image, recon) -> None:
        if self._images_logged >= self._max_images:  # a Kodak sweep should not upload 24 x 2 images
            return
        self._images_logged += 1
        rec = recon.detach().clamp(0, 1)
        err = (rec - image).abs().mean(0)
        err = err / err.max().clamp_min(1e-8)
        self._run.log({
            f"images/{name}/reconstruction": self._wandb.Image(rec.permute(1, 2, 0).cpu().numpy()),
            f"images/{name}/error": self._wandb.Image(err.cpu().numpy(), caption="|error| (scaled)"),
        })  # fmt: skip

    def finish(self) -> None:
        if self._table_rows:
            table = self._wandb.Table(columns=self._table_columns, data=self._table_rows)
            self._run.log({"results": table})
        self._run.finish()


def sweep_group() -> str | None:
    """In a Hydra multirun, the sweep folder's name, so W&B groups a sweep's runs; else None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            return Path(hc.sweep.dir).name
    except (ImportError, ValueError):  # not running under Hydra (API use, tests)
        pass
    return None


LOGGERS: Registry = Registry("logger")
LOGGERS.add("none", lambda cfg, run_config, output_dir: NullLogger())
LOGGERS.add("wandb", WandbLogger)


def make_logger(cfg: Mapping[str, Any], run_config: dict, output_dir: Path) -> NullLogger:
    """Build the logger named by ``cfg["name"]``."""
    return LOGGERS.get(str(cfg.get("name", "none")))(cfg, run_config, output_dir)
