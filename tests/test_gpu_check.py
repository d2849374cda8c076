"""`GPU_CHECK_DRY=1 make gpu-check` runs end to end on the CPU, so the GPU check cannot rot unnoticed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run(tmp_path):
    pytest.importorskip("triton")
    env = {**os.environ, "GPU_CHECK_DRY": "1", "GPU_CHECK_OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    env.pop("TRITON_INTERPRET", None)  # the script sets it per step
    if shutil.which("make"):
        cmd = ["make", "-s", "-C", str(ROOT), "gpu-check", f"GPU_PYTHON={sys.executable}"]
    else:
        cmd = [sys.executable, str(ROOT / "scripts" / "gpu_check.py")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dry"] and summary["commit"]
    assert summary["kernel_tests"]["counts"].get("passed") == 3
    assert summary["render_fps"]["results"]["triton_sum_forward_x3.0_per_s"] > 0
    assert any(k.endswith("decode+render_per_s") for k in summary["render_fps"]["results"])
    for method in ("gi", "gi_pp"):
        fit = summary["fits"][method]
        assert fit["status"] == "ok" and fit["render_backend"] == "triton" and fit["psnr"] > 0
    assert (tmp_path / "summary.md").read_text().startswith("# GPU check: dry-cpu")
