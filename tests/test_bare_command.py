"""A bare ``python -m gsbench`` refuses in one line naming the demo and the paper-setting command.

The bare command runs in a real process: it is the smoke test of the ``python -m gsbench`` entry itself
(argv read from the interpreter, nothing passed to ``main``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import cli

ROOT = Path(__file__).resolve().parents[1]


def test_bare_command_refuses_with_the_two_commands():
    res = subprocess.run(
        [sys.executable, "-m", "gsbench"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "python -m gsbench preset=quick" in lines[0] and "make run" in lines[0]
    assert "python -m gsbench method=gi dataset=kodak gaussians=10000" in lines[0]


def test_help_names_the_demo_first():
    res = cli("--help")
    assert res.returncode == 0
    examples = res.stdout.split("Examples:")[1].splitlines()
    assert "preset=quick" in examples[1]
