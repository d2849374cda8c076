"""Hydra callbacks: after a sweep, the report of its records (tables, RD curves), also sent to W&B.

Configured in configs/config.yaml (``hydra.callbacks.sweep_report``); ``sweep_report=false`` turns it off.
A report that fails is logged and never fails the sweep: the records are what matters.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("gsbench")


class SweepReport(Callback):
    """On the end of a multirun, write ``<sweep dir>/report/`` and, with ``logger=wandb``, log its plots
    to a W&B run in the sweep's group (the same group as the sweep's runs: one RD chart per sweep)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("sweep_report", True):
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            from .cli import build_report

            rep = build_report(
                sweep_dir, sweep_dir / "report", anchor=str(config.get("report_anchor", "jpeg"))
            )
            log.info("sweep report: %s (%s)", rep.out, "; ".join(rep.messages))
            if str(config.logger.get("name", "none")) == "wandb":
                _log_to_wandb(config.logger, sweep_dir, rep.files)
        except Exception as exc:  # the sweep's records are safe; say why the report is missing
            log.warning(
                "sweep report failed (%s: %s); run python -m gsbench.report %s",
                type(exc).__name__,
                exc,
                sweep_dir,
            )


def _log_to_wandb(cfg: DictConfig, sweep_dir: Path, files: list[Path]) -> None:
    import wandb

    run = wandb.init(
        project=cfg.get("project", "gsbench"),
        entity=cfg.get("entity"),
        mode=cfg.get("mode", "offline"),
        group=cfg.get("group") or sweep_dir.name,
        job_type="sweep-report",
        name=f"report-{sweep_dir.name}",
        dir=str(sweep_dir),
        reinit="finish_previous",
    )
    images = {f"report/{p.stem}": wandb.Image(str(p)) for p in files if p.suffix == ".png"}
    if images:
        run.log(images)
    for p in files:
        if p.suffix == ".csv" and p.stat().st_size < 5_000_000:
            import pandas as pd

            run.log({f"tables/{p.stem}": wandb.Table(dataframe=pd.read_csv(p))})
    run.finish()
