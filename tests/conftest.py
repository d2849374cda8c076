"""Shared fixtures: where ../shared lives, tiny images, and a CPU-only, quiet environment."""

from __future__ import annotations

import os

# Triton picks interpreter or compiler when a kernel is decorated, i.e. when gsbench.kernels.* is first
# imported: set it here, before any test module is imported. TRITON_INTERPRET=0 in the environment runs
# the kernel tests compiled on a GPU instead (helpers.triton_device).
os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GSBENCH_SHARED", ROOT.parent / "shared"))
KODAK = SHARED / "data" / "kodak"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_configure(config: pytest.Config) -> None:
    # the data root of every CLI test: the shared copy beside the repo when present
    if (SHARED / "data").is_dir():
        os.environ.setdefault("GSBENCH_DATA", str(SHARED / "data"))
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def kodak_dir() -> Path:
    """The shared Kodak copy, or a skip that says where it was looked for."""
    if not (KODAK / "kodim01.png").exists():
        pytest.skip(f"Kodak not found at {KODAK} (set GSBENCH_SHARED to the folder holding data/kodak)")
    return KODAK


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


@pytest.fixture(autouse=True)
def _default_bitstream_limits():
    """In-process CLI runs set the decoders' limits from their config: each test starts from the defaults."""
    yield
    from gsbench.codec.container import DEFAULT_LIMITS, set_limits

    set_limits(DEFAULT_LIMITS)
