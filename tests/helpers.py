"""Helpers shared by test modules (importable as ``helpers``: pytest puts tests/ on sys.path).

Random renderer inputs, the command line (in-process, or in a subprocess where a real process is needed),
tiny image folders, reading records back, the composed job config, and the Triton device of the kernel
tests.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64


def random_gaussians(
    n: int,
    h: int,
    w: int,
    seed: int,
    *,
    channels: int = 3,
    scale: float = 3.0,
    margin: float = 6.0,
    color_range: tuple[float, float] = (-0.5, 1.5),
    dtype: torch.dtype = F64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random Gaussians over an ``h x w`` image, drawn from a fresh generator seeded by ``seed``.

    Returns:
        means ``[n, 2]`` (some straddling the borders by up to ``margin`` px), Cholesky factors ``[n, 3]``
        (l1, l3 in [0.5, 0.5 + scale), l2 in [-scale/2, scale/2)) and colours ``[n, channels]`` uniform in
        ``color_range`` (the default leaves [0, 1] on purpose: renders must not assume it).
    """
    g = torch.Generator().manual_seed(seed)
    span = torch.tensor([w + 2 * margin, h + 2 * margin], dtype=dtype)
    means = torch.rand(n, 2, generator=g, dtype=dtype) * span - margin
    chol = torch.rand(n, 3, generator=g, dtype=dtype) * scale + torch.tensor(
        [0.5, -0.5 * scale, 0.5], dtype=dtype
    )
    lo, hi = color_range
    colors = torch.rand(n, channels, generator=g, dtype=dtype) * (hi - lo) + lo
    return means, chol, colors


def gsbench(*args: str, timeout: float = 300, **kw: Any) -> subprocess.CompletedProcess:
    """``python -m gsbench ARGS`` from the repository root in a subprocess.

    For what needs a real process: signals (Ctrl-C, kill -9), the ``python -m`` entry itself, a fresh
    interpreter. Everything else goes through :func:`cli`, which is much faster.
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    return subprocess.run(
        [sys.executable, "-m", "gsbench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


class CliResult(NamedTuple):
    """What :func:`cli` returns: the fields of a ``subprocess.CompletedProcess``, so tests read both alike."""

    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> CliResult:
    """``python -m gsbench ARGS`` run in this process: ``gsbench.__main__.main(args)``.

    Captures ``sys.stdout``/``sys.stderr`` and the exit status (``SystemExit``; 0 when ``main`` returns).
    Puts back what a run changes in the process, so runs neither leak into each other nor into later
    tests: ``sys.argv``, the working directory (the subprocess ran in the repository root), the root
    logger's handlers and level (Hydra configures logging for every job; its file handlers are closed),
    ``HYDRA_FULL_ERROR`` and Hydra's global state (its config search path, and the run's config that
    ``HydraConfig.get()`` would otherwise go on returning to code that asks whether it runs under Hydra).
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from gsbench.__main__ import main

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_argv, saved_cwd = sys.argv[:], os.getcwd()
    saved_env = os.environ.get("HYDRA_FULL_ERROR")
    saved_hydra_cfg = HydraConfig.instance().cfg
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    GlobalHydra.instance().clear()
    os.environ["HYDRA_FULL_ERROR"] = "0"  # Hydra's short error report, as the subprocess had
    try:
        os.chdir(ROOT)
        # what `python -m gsbench` puts in argv[0]
        sys.argv = [str(ROOT / "src" / "gsbench" / "__main__.py")]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code
            if isinstance(code, str):  # sys.exit("message"): the interpreter prints it and exits 1
                print(code, file=sys.stderr)
                code = 1
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = saved_hydra_cfg
        for handler in root.handlers:
            if handler not in saved_handlers:
                handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        if saved_env is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved_env
    return CliResult(int(code or 0), out.getvalue(), err.getvalue())


def make_folder(tmp_path: Path, n: int = 3, size=(24, 32)) -> Path:
    """A folder of ``n`` random RGB PNGs of ``size`` (H, W), named img0.png, img1.png, ..."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = (rng.random((*size, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}.png")
    return folder


def records(out: Path) -> dict[str, dict]:
    """Every record below ``out``, by image name."""
    return {p.stem: json.loads(p.read_text()) for p in out.rglob("records/**/*.json")}


def compose_config(*overrides: str, hydra_node: bool = False):
    """The job config ``python -m gsbench OVERRIDES`` would run with, composed in-process (nothing runs).

    ``hydra_node=True`` keeps the ``hydra`` node (launcher, callbacks), as a run would see it.
    """
    from hydra import compose, initialize_config_dir

    from gsbench.config import CONFIG_DIR, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_node)


def triton_device(kernel) -> str:
    """Where the kernel tests run ``kernel``: ``cpu`` under the Triton interpreter, else ``cuda``.

    Skips the calling module when Triton is missing, or when the kernels were compiled (TRITON_INTERPRET
    unset or 0; conftest.py sets it to 1 unless the environment says otherwise) and there is no GPU.
    """
    from gsbench.kernels import is_interpreted

    if is_interpreted(kernel):
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip("kernels compiled (TRITON_INTERPRET unset) but no CUDA device", allow_module_level=True)
    return "cuda"
