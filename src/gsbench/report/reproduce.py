"""``python -m gsbench.report.reproduce experiments/X.yaml``: run an experiment's sweep, then its report.

Paper settings mean hours of GPU time (50,000 iterations per image), so on a machine without CUDA this
refuses, politely, unless ``FORCE=1`` is set (or ``--force`` given). ``--dry-run`` prints what would run
and runs nothing (the tests use it).

Each sweep command gets ``hydra.sweep.dir=<results>/<experiment>/<i>`` (``hydra.run.dir`` for a single
run): a fixed folder per command, so running the target again resumes the sweep instead of starting over
(finished images are skipped). ``$NAME`` in a sweep line is taken from the environment (a missing one
stops the run before anything starts).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from .paper import ExperimentError, load_experiment


def has_cuda() -> bool:
    """Whether torch sees a CUDA device (imported lazily: ``--help`` stays fast)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def forced(env: dict[str, str] | None = None) -> bool:
    """``FORCE=1`` (or true/yes) in the environment."""
    value = (env if env is not None else os.environ).get("FORCE", "")
    return value.strip().lower() in ("1", "true", "yes")


def missing_vars(line: str) -> list[str]:
    """Environment variables a sweep line names (``$NAME``, ``${NAME}``) that are not set."""
    names = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", line)
    return [n for n in names if n not in os.environ]


def sweep_commands(exp: dict, results: Path, python: str = sys.executable) -> list[list[str]]:
    """The experiment's sweep command lines as argv lists, run with this Python, each into its own
    fixed output folder under ``results`` (``$VARS`` expanded from the environment)."""
    cmds = []
    for i, line in enumerate(exp["sweep"]):
        argv = shlex.split(os.path.expandvars(line))
        if argv and argv[0] in ("python", "python3"):
            argv[0] = python
        folder = results / exp["stem"] / str(i)
        multirun = "-m" in argv or "--multirun" in argv
        argv.append(f"hydra.sweep.dir={folder}" if multirun else f"hydra.run.dir={folder}")
        cmds.append(argv)
    return cmds


def report_command(exp_path: Path, exp: dict, results: Path, python: str = sys.executable) -> list[str]:
    """The report over this experiment's results, with its paper-vs-ours table."""
    root = results / exp["stem"]
    return [
        python,
        "-m",
        "gsbench.report",
        str(root),
        "--out",
        str(root / "report"),
        "--experiment",
        str(exp_path),
    ]


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m gsbench.report.reproduce``."""
    p = argparse.ArgumentParser(
        prog="python -m gsbench.report.reproduce",
        description="Run the sweep of an experiments/*.yaml file (the paper's setting), then its report. "
        "Refuses without a CUDA GPU unless FORCE=1 is set.",
    )
    p.add_argument("experiment", type=Path, help="experiments/<name>.yaml")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default: results)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--force", action="store_true", help="run without a GPU (same as FORCE=1)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 done (or dry run), 1 refused (no GPU), 2 bad experiment file or unset variable,
    else the failing command's status."""
    args = parser().parse_args(argv)
    try:
        exp = load_experiment(args.experiment)
    except ExperimentError as exc:
        print(f"gsbench reproduce: error: {exc}", file=sys.stderr)
        return 2
    hours = exp.get("gpu_hours")
    print(f"{exp['title']}")
    print(
        f"estimated GPU time: {hours if hours is not None else '?'} h"
        + (f" ({exp['gpu_time_note']})" if exp.get("gpu_time_note") else "")
    )
    if not has_cuda() and not (args.force or forced()):
        print(
            "gsbench reproduce: no CUDA GPU is visible, and this sweep is meant for one (the estimate "
            "above is GPU time; on a CPU it would take far longer). Nothing was run.\n"
            "  To run it anyway: FORCE=1 make <target>, or add --force. To see the commands: --dry-run "
            "with FORCE=1.",
            file=sys.stderr,
        )
        return 1
    unset = sorted({v for line in exp["sweep"] for v in missing_vars(line)})
    if unset:
        print(
            f"gsbench reproduce: the sweep needs {', '.join(unset)} set (see {args.experiment})",
            file=sys.stderr,
        )
        if not args.dry_run:
            return 2
    cmds = [*sweep_commands(exp, args.results), report_command(args.experiment, exp, args.results)]
    for cmd in cmds:
        print("+ " + shlex.join(cmd), flush=True)
        if args.dry_run:
            continue
        status = subprocess.call(cmd)
        if status != 0:
            print(f"gsbench reproduce: command failed with status {status}", file=sys.stderr)
            return status
    if args.dry_run:
        print("(dry run: nothing was run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
