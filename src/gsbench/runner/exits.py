"""Exit statuses scripts can trust, and the one-line messages that go with them.

* ``0``: every image of every job has an ``ok`` record;
* ``1``: the run finished but some images (or whole jobs of a sweep) failed; a summary line says how
  many and where their records (with the reason) are;
* ``2``: a usage error (bad value, unknown name, impossible method/task pair), before any work;
* ``130``: interrupted (Ctrl-C); one line says what finished and the exact command that resumes.

Failures are counted in this process (the basic launcher runs a sweep's jobs here) and, at the end of
a sweep, from the records on disk (launchers that run jobs elsewhere: joblib, submitit).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("gsbench")

OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


@dataclass
class Outcome:
    """What the jobs of this process left: failed images per records folder, jobs that failed whole."""

    failed_images: dict[str, list[str]] = field(default_factory=dict)
    failed_jobs: list[str] = field(default_factory=list)
    sweep_dir: Path | None = None

    def reset(self) -> None:
        self.failed_images.clear()
        self.failed_jobs.clear()
        self.sweep_dir = None

    def image_failures(self, records_dir: Path, names: list[str]) -> None:
        if names:
            self.failed_images[str(records_dir)] = list(names)

    @property
    def failed(self) -> bool:
        return bool(self.failed_images or self.failed_jobs)

    def summary(self) -> str:
        """One line: how many images (and jobs) failed and where their records are."""
        n = sum(len(v) for v in self.failed_images.values())
        where = "; ".join(f"{d} ({', '.join(v)})" for d, v in self.failed_images.items())
        parts = []
        if n:
            parts.append(f"{n} image{'s' if n != 1 else ''} failed; reasons in their records: {where}")
        if self.failed_jobs:
            parts.append(f"{len(self.failed_jobs)} job(s) failed: {', '.join(self.failed_jobs)}")
        return "gsbench: " + "; ".join(parts)


OUTCOME = Outcome()


def failed_records(root: Path) -> dict[str, list[str]]:
    """``{records folder: [image, ...]}`` of the ``failed`` records under ``root``."""
    out: dict[str, list[str]] = {}
    for path in sorted(root.rglob("records/**/*.json")):
        try:
            status = json.loads(path.read_text()).get("status")
        except (OSError, ValueError):
            continue
        if status == "failed":
            out.setdefault(str(path.parent), []).append(path.stem)
    return out


def ok_records(root: Path) -> int:
    """How many ``ok`` records lie under ``root``."""
    n = 0
    for path in root.rglob("records/**/*.json"):
        try:
            n += json.loads(path.read_text()).get("status") == "ok"
        except (OSError, ValueError):
            continue
    return n


class SweepOutcome(Callback):
    """At the end of a sweep, counts the failed records of all its jobs (wherever they ran)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        OUTCOME.sweep_dir = Path(str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        OUTCOME.sweep_dir = sweep_dir
        if sweep_dir.is_dir():
            for records_dir, names in failed_records(sweep_dir).items():
                OUTCOME.image_failures(Path(records_dir), names)


def resume_command(argv: list[str], key: str, folder: Path) -> str:
    """The command line that resumes this run: the same arguments, pinned to the same output folder."""
    args = [a for a in argv if not a.startswith((f"{key}=", f"+{key}=", f"++{key}="))]
    return shlex.join(["python", "-m", "gsbench", *args, f"{key}={folder}"])


def interrupted(argv: list[str], multirun: bool, folder: Path | None) -> None:
    """Print what finished and how to resume in one line, then exit with :data:`INTERRUPTED`."""
    if folder is None:
        print("gsbench: interrupted before any job started; nothing to resume", file=sys.stderr)
    else:
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        done = ok_records(folder) if folder.is_dir() else 0
        print(
            f"gsbench: interrupted; {done} image{'s' if done != 1 else ''} finished "
            f"(records under {folder}); resume with: {resume_command(argv, key, folder)}",
            file=sys.stderr,
        )
    sys.exit(INTERRUPTED)
