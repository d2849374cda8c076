"""``python -m gsbench [GROUP=OPTION ...] [KEY=VALUE ...]``: the Hydra command line (see ``--help``).

Exit status: 0 when every image of every job is ok, 1 when some failed (a summary line says where their
records are), 2 for a usage error (checked before any work), 130 when interrupted (one line says how to
resume). See :mod:`gsbench.runner.exits`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from .config import CONFIG_DIR, apply_limits, check_overrides, register_resolvers
from .errors import UserError
from .registry import UnknownNameError
from .runner.exits import FAILED, OUTCOME, USAGE, interrupted
from .validation import check_argv, check_config

log = logging.getLogger("gsbench")
BARE = (
    "gsbench: no arguments; the defaults are the paper's setting (GaussianImage, 10,000 Gaussians, "
    "50,000 iterations: hours on a CPU). Quick demo (~2 min): python -m gsbench preset=quick "
    "(= make run); paper setting: python -m gsbench method=gi dataset=kodak gaussians=10000; "
    "all options: python -m gsbench --help"
)


def _user_errors() -> tuple[type[BaseException], ...]:
    from .data import DatasetError

    return (UserError, DatasetError, UnknownNameError)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from .runner import run_job

    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        check_config(cfg)  # every value typed and range-checked before any work
        apply_limits(cfg)
        result = run_job(cfg, output_dir)
    except _user_errors() as exc:
        print(f"gsbench: error: {exc}", file=sys.stderr)
        if not multirun:
            sys.exit(USAGE)
        log.error("job failed: %s", exc)  # a sweep goes on with its other jobs
        OUTCOME.failed_jobs.append(output_dir.name)
        return None
    except KeyboardInterrupt:
        folder = Path(str(hc.sweep.dir)) if multirun else output_dir
        interrupted(sys.argv[1:], multirun, folder)
    from .runner.summary import format_table, write_results

    csv = write_results(result.table, output_dir)
    print(format_table(result.table, str(cfg.task.name)))
    print(f"records: {result.records_dir}\ntable:   {csv}")
    if result.skipped:
        print(f"skipped (already done): {len(result.skipped)}")
    if result.failed:
        print(f"FAILED: {', '.join(result.failed)} (reasons in their records and the log)", file=sys.stderr)
        OUTCOME.image_failures(result.records_dir, result.failed)
    ok = result.table[result.table["status"] == "ok"]
    return float(ok["psnr"].mean()) if len(ok) else None


def main(argv: list[str] | None = None) -> None:
    """Entry point: check group names and values (one-line errors, exit 2), then hand over to Hydra;
    exit 1 when any image or job failed."""
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    if len(sys.argv) == 1:  # the defaults are the paper's setting: hours on a CPU, never run by accident
        print(BARE, file=sys.stderr)
        sys.exit(2)
    register_resolvers()
    OUTCOME.reset()
    try:
        check_overrides(sys.argv[1:])
        check_argv(a for a in sys.argv[1:] if not a.startswith("-"))
    except (UserError, UnknownNameError) as exc:
        print(f"gsbench: error: {exc}", file=sys.stderr)
        sys.exit(USAGE)
    try:
        _hydra_main()
    except KeyboardInterrupt:  # between jobs of a sweep, or before the first one started
        interrupted(sys.argv[1:], True, OUTCOME.sweep_dir)
    if OUTCOME.failed:
        print(OUTCOME.summary(), file=sys.stderr)
        sys.exit(FAILED)


if __name__ == "__main__":
    main()
