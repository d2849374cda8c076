"""The Triton kernels compile ahead of time for the GPU targets, without spills, on this CPU.

The configurations come from the launch code (:mod:`gsbench.kernels.aot` calls each module's ``plan_*``
functions over an option space); a test here records the launches of real (interpreted) renders and
checks that the enumeration contains every one of them. Compiling needs the kernels imported with
``TRITON_INTERPRET`` off, and the other kernel tests import them interpreted, so the compiles run in a
subprocess (once per session; triton's own cache makes later sessions fast).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

pytest.importorskip("triton")

from gsbench.gaussians import cholesky_to_cov
from gsbench.kernels import aot, is_interpreted, recording
from gsbench.kernels.pipeline import render_triton
from gsbench.kernels.rasterize_sum import _rasterize_sum_fwd_kernel
from helpers import random_gaussians

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ",".join(map(str, aot.TARGETS))


def compile_rows(space: str, targets: str, tmp: Path) -> list[dict]:
    out = tmp / f"aot_{space}.jsonl"
    env = {
        **os.environ,
        "TRITON_INTERPRET": "0",
        "TRITON_DEFAULT_FP_FUSION": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gsbench.kernels.aot",
            "--space",
            space,
            "--targets",
            targets,
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if not out.exists():
        pytest.fail(f"aot compile did not run:\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in out.read_text().splitlines() if line]


@pytest.fixture(scope="session")
def default_rows(tmp_path_factory) -> list[dict]:
    return compile_rows("default", TARGETS, tmp_path_factory.mktemp("aot"))


def failures(rows: list[dict]) -> list[str]:
    return [
        f"{r['kernel']} {r['dtype']} {r['constexprs']} {r['target']}: {r['error']}"
        for r in rows
        if not r["ok"]
    ]


def test_default_configurations_compile_for_every_target(default_rows):
    assert {r["target"] for r in default_rows} == {f"sm_{cc}" for cc in aot.TARGETS}
    assert len(default_rows) == len(aot.TARGETS) * len(aot.unique_plans("default"))
    assert not failures(default_rows), "\n".join(failures(default_rows))


def test_default_configurations_do_not_spill_on_sm90(default_rows):
    rows = [r for r in default_rows if r["target"] == "sm_90" and r["ok"]]
    if not rows or "stack" not in rows[0]:
        reason = rows[0].get("resources_error", "no rows") if rows else "no rows"
        pytest.skip(f"no cubin resource usage (triton's bundled cuobjdump did not run: {reason})")
    spilling = [
        f"{r['kernel']} {r['constexprs']}: {r['regs']} registers, {r['stack']} B stack"
        for r in rows
        if r["stack"] or r["local"]
    ]
    assert not spilling, "\n".join(spilling)


@pytest.mark.slow
def test_every_option_value_compiles():
    """Each value of every option axis (dtypes, tile sizes 2-64, channel buckets, K 1..64, the three
    parameterisations) at least once, on sm_90 (the default configurations cover the other targets).
    ``python -m gsbench.kernels.aot --space full`` compiles the whole product for every target."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        rows = compile_rows("cover", "90", Path(d))
    assert len(rows) == len(aot.unique_plans("cover"))
    assert not failures(rows), "\n".join(failures(rows))


def test_enumeration_contains_every_real_launch():
    if not is_interpreted(_rasterize_sum_fwd_kernel):
        pytest.skip("needs the interpreter (TRITON_INTERPRET=1 before the kernels are imported)")
    known = {p.key() for p in aot.launch_plans(aot.FULL)}
    launched = []
    cases = [  # dtype, channels, tile, mode, k, cutoff, legacy cap, parameterisation
        (torch.float64, 3, 8, "sum", 10, True, None, "cholesky"),
        (torch.float32, 1, 4, "sum", 10, False, 5, "covariance"),
        (torch.float64, 17, 16, "sum", 10, True, None, "scale_rot"),  # two channel groups
        (torch.float32, 3, 16, "topk", 10, True, None, "covariance"),
        (torch.float64, 2, 2, "topk", 33, False, None, "cholesky"),
    ]
    for dtype, channels, tile, mode, k, cutoff, cap, pmode in cases:
        means, params, colors = (
            t.to(dtype).requires_grad_() for t in random_gaussians(5, 7, 9, seed=1, channels=channels)
        )
        if pmode == "covariance":
            params = torch.cat([cholesky_to_cov(params), torch.zeros_like(params[:, :1])], 1)
        with recording() as runs:
            out = render_triton(
                params,
                means,
                colors,
                7,
                9,
                param_mode=pmode,
                mode=mode,
                tile_size=tile,
                cutoff=cutoff,
                legacy_cap=cap,
                k=k,
            )
            out.square().sum().backward()
        launched += runs
    names = {p.name for p in launched}
    assert len(names) == 7, names  # projection x2, binning, sum x2, top-K x2
    missing = [(p.name, p.constexprs, p.signature()) for p in launched if p.key() not in known]
    assert not missing, missing
