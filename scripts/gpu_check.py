"""One-shot GPU check: install, kernel tests compiled on the GPU, FPS benchmark, timed fits; one folder.

    make gpu-wheels                 # once, on a machine with network: wheels + kodim01 into .whl/
    make gpu-check                  # on the GPU machine (no network needed): results/gpu/<gpu-name>/
    GPU_CHECK_DRY=1 make gpu-check  # the same steps on this CPU: tiny sizes, the Triton interpreter

Steps (each logged to ``<out>/<step>.log``, each bounded in time so the whole check fits in 8 minutes):

1. ``install``: the ``.whl/`` wheels (the dependencies the GPU image lacks) then ``pip install -e .
   --no-deps``; skipped when gsbench's dependencies already import, and in dry mode.
2. ``kernel_tests``: ``tests/test_kernels_{projection,raster,topk}.py`` with ``TRITON_INTERPRET=0``:
   the compiled kernels against the float64 references, forward and backward.
3. ``render_fps``: ``benchmarks/render_fps.py`` at Kodak 768x512 with 10,000 Gaussians, at the initial
   and the fitted size, plus decoding FPS of the newest committed bitstream; GPU clocks and power.
4. ``fit_gi``, ``fit_gi_pp``: kodim01 at 10,000 Gaussians; a short probe fit measures iterations per
   second, then the fit runs 50,000 iterations or as many as ``GPU_CHECK_FIT_SECONDS`` allow.

``<out>/summary.json`` (and ``summary.md``) holds the commit, GPU, versions, the config of every step,
what each step measured and the issue's targets beside them. Knobs (environment): ``GPU_CHECK_DRY``,
``GPU_CHECK_OUT`` (output folder), ``GPU_CHECK_FIT_SECONDS`` (default 90 per method),
``GPU_CHECK_ITERATIONS`` (default 50000).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DRY = os.environ.get("GPU_CHECK_DRY", "") not in ("", "0")
PY = sys.executable
TARGET_FPS, TARGET_STEPS = 10_000, 2_000  # issue targets at Kodak 768x512, 10k Gaussians, H100/H200
METRICS = "[psnr,psnr_8bit,ssim,ms_ssim]"  # LPIPS and FLIP need weights/downloads the GPU box lacks


def sh(cmd: list[str], log: Path, env: dict | None = None, timeout: float = 600) -> tuple[int, float]:
    """Run ``cmd`` from the repository root, output to ``log``; (exit code, seconds)."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            rc = subprocess.run(
                cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            f.write(f"\n[gpu_check] timed out after {timeout:.0f} s\n")
            rc = 124
    return rc, round(time.perf_counter() - t0, 1)


def base_env(interpret: bool) -> dict:
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1" if interpret else "0",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1" if interpret else "8"),
        "TRITON_DEFAULT_FP_FUSION": "1",
        "WANDB_MODE": "disabled",
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    bundled = ROOT / ".whl" / "data"
    if "GSBENCH_DATA" not in env and (bundled / "kodak" / "kodim01.png").is_file():
        env["GSBENCH_DATA"] = str(bundled)  # the Kodak image `make gpu-wheels` brought along
    return env


def git_commit() -> str:
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return (sha or "unknown") + ("-dirty" if dirty.strip() else "")


def install(out: Path) -> dict:
    """Wheels from .whl/ (offline), then gsbench itself, editable, without dependencies."""
    probe = "import hydra, omegaconf, pytorch_msssim, pytorch_optimizer, constriction, flip_evaluator"
    if DRY or subprocess.run([PY, "-c", probe], capture_output=True).returncode == 0:
        return {"status": "skipped", "reason": "dry mode" if DRY else "dependencies already import"}
    wheels = sorted(str(p) for p in (ROOT / ".whl").glob("*.whl"))
    rc, sec = 0, 0.0
    if wheels:
        rc, sec = sh(
            [PY, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *wheels], out / "install.log"
        )
    if rc == 0:
        rc2, sec2 = sh(
            [PY, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", "."],
            out / "install_gsbench.log",
        )
        rc, sec = rc2, sec + sec2
    return {"status": "ok" if rc == 0 else "failed", "seconds": sec, "wheels": [Path(w).name for w in wheels]}


def kernel_tests(out: Path) -> dict:
    tests = ["tests/test_kernels_projection.py", "tests/test_kernels_raster.py", "tests/test_kernels_topk.py"]
    if DRY:  # the interpreter takes minutes over the whole files: one small test of each kernel family
        tests = [
            "tests/test_kernels_projection.py::test_binning_empty",
            "tests/test_kernels_raster.py::test_sum_zero_gaussians_and_one_pixel",
            "tests/test_kernels_topk.py::test_topk_zero_gaussians_and_one_pixel",
        ]
    junit = out / "kernel_tests.xml"
    cmd = [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *tests]
    rc, sec = sh(cmd, out / "kernel_tests.log", base_env(DRY), timeout=150 if DRY else 240)
    text = (out / "kernel_tests.log").read_text()
    m = re.findall(r"(\d+) (passed|failed|skipped|error)", text.splitlines()[-1] if text else "")
    return {
        "status": "ok" if rc == 0 else "failed",
        "seconds": sec,
        "interpreter": DRY,
        "counts": {k: int(v) for v, k in m},
        "tests": tests,
    }


def render_fps(out: Path) -> dict:
    csv_path = out / "render_fps.csv"
    cmd = [PY, "benchmarks/render_fps.py", "--out", str(csv_path)]
    cmd += (
        ["--interpret", "--runs", "2"]
        if DRY
        else ["--sizes", "kodak", "--gaussians", "10000", "--runs", "100"]
    )
    rc, sec = sh(cmd, out / "render_fps.log", base_env(DRY), timeout=150)
    rows = []
    if csv_path.exists():
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
    best = {}
    for r in rows:
        if r.get("mode") in ("forward", "step"):
            best[f"{r['renderer']}_{r['mode']}_x{r['size_scale']}_per_s"] = float(r["fps"])
        elif r.get("mode") == "decode":
            best[f"{r['renderer']}_per_s"] = float(r["fps"])
    return {"status": "ok" if rc == 0 else "failed", "seconds": sec, "results": best, "csv": csv_path.name}


def tiny_image(out: Path) -> Path:
    """Dry mode: a 24x32 crop of kodim01 (or of scikit-image's astronaut) as a one-image folder."""
    from PIL import Image

    folder = out / "dry_image"
    folder.mkdir(exist_ok=True)
    env = base_env(True)
    src = Path(env.get("GSBENCH_DATA", ROOT.parent / "shared" / "data")) / "kodak" / "kodim01.png"
    if src.is_file():
        img = Image.open(src).convert("RGB")
    else:
        from skimage import data

        img = Image.fromarray(data.astronaut())
    img.crop((300, 200, 332, 224)).save(folder / "kodim01.png")
    return folder


def fit(method: str, out: Path, iterations: int, tag: str, data: list[str]) -> dict:
    """One CLI fit of kodim01; its record's PSNR, iterations and rate."""
    run_dir = out / f"fit_{method}{tag}"
    shutil.rmtree(run_dir, ignore_errors=True)
    dev = "cpu" if DRY else "cuda"
    cmd = [
        PY,
        "-m",
        "gsbench",
        f"method={method}",
        *data,
        f"train.iterations={iterations}",
        f"device={dev}",
        "render.backend=triton",
        f"metrics.names={METRICS}",
        "progress=false",
        "resume=false",
        f"log_every={max(1, iterations // 10)}",
        "task.fps_repeats=5",
        f"hydra.run.dir={run_dir}",
    ]
    rc, sec = sh(cmd, out / f"fit_{method}{tag}.log", base_env(DRY), timeout=600)
    recs = sorted(run_dir.glob("records/**/*.json"))
    row = {"status": "ok" if rc == 0 and recs else "failed", "seconds": sec, "iterations": iterations}
    if recs:
        rec = json.loads(recs[0].read_text())
        hist = (rec.get("method_info") or {}).get("history") or []
        rate = iterations / rec["fit_seconds"] if rec.get("fit_seconds") else None
        if len(hist) >= 2 and hist[-1]["seconds"] > hist[0]["seconds"]:  # excludes start-up and compiles
            rate = (hist[-1]["step"] - hist[0]["step"]) / (hist[-1]["seconds"] - hist[0]["seconds"])
        row |= {
            "psnr": rec["metrics"].get("psnr"),
            "ms_ssim": rec["metrics"].get("ms_ssim"),
            "fit_seconds": rec.get("fit_seconds"),
            "iterations_per_s": rate,
            "num_gaussians": rec.get("num_gaussians"),
            "render_backend": rec.get("render_backend"),
            "record": str(recs[0].relative_to(out)),
        }
    return row


def fits(out: Path) -> dict:
    budget = float(os.environ.get("GPU_CHECK_FIT_SECONDS", "90"))
    full = int(os.environ.get("GPU_CHECK_ITERATIONS", "50000"))
    if DRY:
        data, probe_it, gaussians = ["dataset=folder", f"dataset.path={tiny_image(out)}"], 2, 20
    else:
        data, probe_it, gaussians = ["dataset=kodak", "dataset.images=[kodim01]"], 500, 10_000
    data.append(f"gaussians={gaussians}")
    results = {}
    for method in ("gi", "gi_pp"):
        if DRY:  # a probe costs a whole interpreted start-up: a fixed 3 iterations instead
            probe, iters = {"status": "skipped", "reason": "dry mode"}, 3
        else:
            probe = fit(method, out, probe_it, "_probe", data)
            iters = min(full, max(probe_it, int((probe.get("iterations_per_s") or 0.0) * budget)))
        results[method] = fit(method, out, iters, "", data) | {
            "probe": probe,
            "time_budget_s": budget,
            "gaussians": gaussians,
        }
    return results


def main() -> int:
    import torch

    gpu = "dry-cpu" if DRY else (torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    if gpu is None:
        print("gpu_check: no CUDA GPU here. Run it on a GPU machine, or GPU_CHECK_DRY=1 for the CPU dry run.")
        return 2
    out = Path(
        os.environ.get("GPU_CHECK_OUT") or ROOT / "results" / "gpu" / re.sub(r"[^A-Za-z0-9._-]+", "_", gpu)
    )
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    summary = {
        "gpu": gpu,
        "dry": DRY,
        "commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {k: v for k, v in os.environ.items() if k.startswith("GPU_CHECK_")},
        "targets": {"forward_fps": TARGET_FPS, "train_steps_per_s": TARGET_STEPS},
    }
    steps = [("install", install), ("kernel_tests", kernel_tests), ("render_fps", render_fps), ("fits", fits)]
    for name, fn in steps:
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            summary[name] = fn(out)
        except Exception as e:  # one broken step must not hide the others' results
            summary[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
        print(f"[gpu_check] {name}: {json.dumps(summary[name])[:400]}", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    try:
        import triton

        summary["triton"] = triton.__version__
    except ImportError:
        summary["triton"] = None
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "summary.md").write_text(report(summary))
    print(report(summary))
    ok = all(summary[n].get("status") in ("ok", "skipped") for n in ("install", "kernel_tests", "render_fps"))
    ok = ok and all(r.get("status") == "ok" for r in summary["fits"].values())
    return 0 if ok else 1


def report(s: dict) -> str:
    """A short Markdown summary: what ran, what it measured, the targets beside it."""
    fps = s["render_fps"].get("results", {})
    lines = [
        f"# GPU check: {s['gpu']}"
        + (" (dry run: interpreter, tiny sizes, times mean nothing)" if s["dry"] else ""),
        "",
        f"commit {s['commit']}, torch {s['torch']}, triton {s.get('triton')}, {s['seconds']} s in all",
        "",
        f"- kernel tests (compiled: {not s['dry']}): {s['kernel_tests'].get('status')} "
        f"{s['kernel_tests'].get('counts', '')}",
        f"- forward FPS, Triton sum, initial / fitted size: {fps.get('triton_sum_forward_x1.0_per_s')} / "
        f"{fps.get('triton_sum_forward_x3.0_per_s')} (target >= {TARGET_FPS})",
        f"- render steps/s (forward + backward), initial / fitted: {fps.get('triton_sum_step_x1.0_per_s')} / "
        f"{fps.get('triton_sum_step_x3.0_per_s')}",
    ]
    for m, r in s["fits"].items() if isinstance(s["fits"], dict) and "status" not in s["fits"] else []:
        lines.append(
            f"- fit {m}: {r.get('iterations')} iterations, {r.get('iterations_per_s') or 0:.1f} it/s "
            f"(target >= {TARGET_STEPS}), PSNR {r.get('psnr')} dB, {r.get('status')}"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
