"""GPU benchmark of the Triton rasterizers: forward FPS and training-step (forward + backward) time.

    python benchmarks/render_fps.py                      # all sizes, writes results/render_fps_<gpu>.csv
    python benchmarks/render_fps.py --sizes kodak --gaussians 10000 --runs 200
    python benchmarks/render_fps.py --interpret          # CPU smoke run of the code path (tiny sizes)
    python benchmarks/render_fps.py --bitstream results/.../kodim01.gsb   # + decoding FPS of that file

Each case renders GaussianImage-style Gaussians (uniform means, Cholesky factors drawn as GaussianImage
initialises them: rand + (0.5, 0, 0.5), i.e. 1-2 px) already on the GPU, from parameters to image:
projection + binning + rasterization, the binning's one host sync included. Each case runs at the
initial size and at the size of a fitted image (``--size-scales``: the Cholesky factors times 3, the
radius Gaussians reach in a 50k-iteration fit, README "Measured here"): cost grows with the footprint.
``--bitstream`` (default: the newest ``results/**/*.gsb``) times what the papers call decoding FPS:
file bytes -> entropy decoding -> dequantisation -> render, and the render of the decoded Gaussians.
The GPU's clocks, power and throttle state (``nvidia-smi``) are recorded before and after.
Times are CUDA events around each run after ``--warmup`` untimed runs (compilation excluded), rotating
over 4 input sets so repeated runs do not just re-read the same cached buffers;
median and p20/p80 over ``--runs``.
Renderers: Triton sum, Triton top-K (K=10), and the PyTorch renderer on the same GPU for comparison.

Floors (see METHOD.md of the device notes): bytes = inputs read once + image written once (plus the
image gradient read and parameter gradients written for a step), over the measured copy bandwidth;
arithmetic = pixel-Gaussian evaluations inside the footprints x an estimated FMA-pipe count per
evaluation, over the measured float32 FMA rate (an SGEMM without TF32); exponentials = one per
evaluation (two per step: the backward recomputes them) over the special-function rate, which is 1/8
of the FMA instruction rate on sm_80/sm_90 (16 vs 128 lanes per SM), i.e. FMA flop/s / 16. The units
run in parallel, so the floor is the largest of the three; ``ratio`` = time / floor.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    "kodak": (512, 768, [1_000, 5_000, 10_000, 50_000, 70_000]),
    "2k": (1356, 2040, [10_000, 100_000, 500_000]),
}
SMOKE = {"smoke": (16, 24, [24])}
# Estimated float32 FMA-pipe operations per pixel-Gaussian evaluation (offsets 2, quadratic form 7,
# footprint tests 4, C FMAs; the exp counted apart) and per backward evaluation (recompute 13,
# <g, c> 2C, d colour C, d conic 6, d mean 8, d sigma 2).
OPS_FWD, OPS_BWD = 13, 29
EXP_PER_FMA_INSTR = 1 / 8  # special-function unit throughput relative to the FMA pipe (sm_80, sm_90)
FITTED_SCALE = 3.0  # Cholesky factor scale of fitted Gaussians (README "Measured here")


def git_commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout
        return sha + ("-dirty" if dirty.strip() else "")
    except OSError:
        return "unknown"


def gpu_state() -> dict[str, str]:
    """Clocks, power and throttle reasons from ``nvidia-smi`` (empty where it is absent)."""
    fields = (
        "name,pstate,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu,"
        "clocks_throttle_reasons.active,persistence_mode"
    )
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if not out:
        return {}
    return dict(zip(fields.split(","), (v.strip() for v in out.splitlines()[0].split(",")), strict=False))


def make_inputs(n, h, w, seed, dev, channels=3, scale=1.0):
    """Means ``[N, 2]``, Cholesky factors ``[N, 3]`` (times ``scale``), colours ``[N, C]``."""
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g) * torch.tensor([w, h], dtype=torch.float32)
    chol = (torch.rand(n, 3, generator=g) + torch.tensor([0.5, 0.0, 0.5])) * scale
    colors = torch.rand(n, channels, generator=g)
    return [t.to(dev).requires_grad_() for t in (means, chol, colors)]


def pipelines(h, w, args):
    """name -> fn(means, chol, colors) -> image, for every renderer."""
    from gsbench.gaussians import RenderOptions, cholesky_to_cov, render
    from gsbench.kernels.pipeline import render_triton

    def triton(mode, **kw):
        def fn(means, chol, colors):
            return render_triton(
                chol, means, colors, h, w, param_mode="cholesky", mode=mode, tile_size=args.tile, **kw
            )

        return fn

    torch_opts = RenderOptions(backend="torch", torch_tile_size=args.tile)
    return {
        "triton_sum": triton("sum"),
        "triton_topk": triton("topk", k=args.k),
        "torch_sum": lambda m, c, k: render(m, cholesky_to_cov(c), k, h, w, torch_opts),
    }


def time_runs(fn, sets, warmup, runs, dev):
    """Per-run milliseconds (CUDA events on a GPU, perf_counter in the interpreter)."""
    for i in range(warmup):
        fn(*sets[i % len(sets)])
    times = []
    if dev.type == "cuda":
        torch.cuda.synchronize()
        ev = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)
        ]
        for i, (a, b) in enumerate(ev):
            a.record()
            fn(*sets[i % len(sets)])
            b.record()
        torch.cuda.synchronize()
        times = [a.elapsed_time(b) for a, b in ev]
    else:
        for i in range(runs):
            t0 = time.perf_counter()
            fn(*sets[i % len(sets)])
            times.append(1e3 * (time.perf_counter() - t0))
    q = statistics.quantiles(times, n=10) if len(times) > 1 else [times[0]] * 9
    return statistics.median(times), q[1], q[7], len(times)


def ceilings(dev):
    """Measured copy bandwidth (bytes/s, read + write) and float32 FMA rate (flop/s)."""
    if dev.type != "cuda":
        return float("nan"), float("nan")
    x = torch.empty(1 << 28, dtype=torch.float32, device=dev).uniform_()
    y = torch.empty_like(x)
    ms, *_ = time_runs(lambda: y.copy_(x), [()], 3, 20, dev)
    bw = 2 * x.numel() * 4 / (ms * 1e-3)
    a = torch.randn(8192, 8192, device=dev)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # FFMA, not the matrix units: the rate our kernels use
    ms, *_ = time_runs(lambda: a @ a, [()], 2, 10, dev)
    torch.backends.cuda.matmul.allow_tf32 = prev
    return bw, 2 * 8192**3 / (ms * 1e-3)


def evaluations(means, chol, h, w):
    """Pixel-Gaussian evaluations inside the clipped square footprints (the necessary work)."""
    from gsbench.gaussians import cholesky_to_cov, cov_radius, cov_to_conic

    with torch.no_grad():
        cov = cholesky_to_cov(chol)
        r = cov_radius(cov, cov_to_conic(cov)[1])
        mx, my = means[:, 0], means[:, 1]
        nx = (torch.clamp(torch.floor(mx + r), max=w - 1) - torch.clamp(torch.ceil(mx - r), min=0) + 1).clamp(
            min=0
        )
        ny = (torch.clamp(torch.floor(my + r), max=h - 1) - torch.clamp(torch.ceil(my - r), min=0) + 1).clamp(
            min=0
        )
        return float((nx * ny * (r > 0)).sum())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--gaussians", type=int, nargs="*", help="override the Gaussian counts")
    ap.add_argument("--renderers", nargs="+", default=["triton_sum", "triton_topk", "torch_sum"])
    ap.add_argument("--torch-max", type=int, default=100_000, help="skip the torch renderer above this N")
    ap.add_argument(
        "--size-scales",
        type=float,
        nargs="+",
        default=[1.0, FITTED_SCALE],
        help="Cholesky factor scales: 1 = initial size, 3 = fitted",
    )
    ap.add_argument("--tile", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument(
        "--bitstream", type=Path, help="a .gsb file to time decoding (default: newest in results/)"
    )
    ap.add_argument("--no-decode", action="store_true", help="skip the decoding FPS")
    ap.add_argument("--out", type=Path, help="CSV path (default results/render_fps_<gpu>.csv)")
    ap.add_argument("--interpret", action="store_true", help="CPU smoke run in the Triton interpreter")
    args = ap.parse_args()
    if args.interpret:
        os.environ["TRITON_INTERPRET"] = "1"  # before any kernel module is imported
        dev, sizes, args.warmup, args.runs = torch.device("cpu"), SMOKE, 1, 3
        gpu = "cpu-interpreter"
    elif not torch.cuda.is_available():
        print("render_fps: no CUDA GPU here; this benchmark times GPU kernels. Run it on a GPU, or pass")
        print("--interpret for a tiny CPU smoke run of the code path (its times mean nothing).")
        return 2
    else:
        dev, sizes = torch.device("cuda"), {s: SIZES[s] for s in args.sizes}
        gpu = torch.cuda.get_device_name()
    sys.path.insert(0, str(ROOT / "src"))  # a checkout works without an install
    import triton

    commit = git_commit()
    state_before = gpu_state()
    print(f"GPU: {gpu} | torch {torch.__version__} | triton {triton.__version__} | commit {commit}")
    print(f"GPU state before: {state_before or 'nvidia-smi not available'}")
    bw, rate = ceilings(dev)
    exp_rate = rate / 2 * EXP_PER_FMA_INSTR
    print(
        f"measured ceilings: copy {bw / 1e9:.0f} GB/s, fp32 FMA {rate / 1e12:.1f} TFLOP/s "
        f"(exp: {exp_rate / 1e12:.2f} T/s estimated)"
    )
    common = dict(gpu=gpu, commit=commit, torch=torch.__version__, triton=triton.__version__)
    rows = []
    for h, w, counts in sizes.values():
        for n in args.gaussians or counts:
            for scale in args.size_scales:
                rows += time_case(h, w, n, scale, dev, args, bw, rate, exp_rate, common)
    if not args.no_decode:
        from decode_fps import find_bitstream, time_decode

        path = args.bitstream or find_bitstream()
        if path is None:
            print("no bitstream (.gsb) under results/: decoding FPS skipped")
        else:
            rows += [
                common | r
                for r in time_decode(path.resolve(), dev, args.tile, args.warmup, args.runs, time_runs)
            ]
    state_after = gpu_state()
    print(f"GPU state after: {state_after or 'nvidia-smi not available'}")
    for r in rows:
        r.update({f"before_{k}": v for k, v in state_before.items()})
        r.update({f"after_{k}": v for k, v in state_after.items()})
    out = args.out or (
        None if args.interpret else ROOT / "results" / f"render_fps_{gpu.replace(' ', '_')}.csv"
    )
    if out is not None and rows:
        out.parent.mkdir(parents=True, exist_ok=True)
        fields = list(dict.fromkeys(k for r in rows for k in r))
        with open(out, "w", newline="") as f:
            wr = csv.DictWriter(f, fieldnames=fields)
            wr.writeheader()
            wr.writerows(rows)
        print(f"wrote {out}")
    return 0


def time_case(h, w, n, scale, dev, args, bw, rate, exp_rate, common) -> list[dict]:
    """Forward and step timings of every renderer for one (size, count, Gaussian scale)."""
    rows = []
    sets = [make_inputs(n, h, w, seed, dev, scale=scale) for seed in range(4)]
    cot = torch.rand(3, h, w, device=dev)
    evals = evaluations(sets[0][0], sets[0][1], h, w)
    fns = pipelines(h, w, args)
    ref = fns["torch_sum"](*sets[0]).detach() if n <= args.torch_max else None
    for name in args.renderers:
        if name == "torch_sum" and n > args.torch_max:
            continue
        fn = fns[name]
        err = ""
        if ref is not None and name == "triton_sum":  # correctness before speed
            out = fn(*sets[0]).detach()
            err = f"{float((out - ref).norm() / ref.norm().clamp(min=1e-30)):.1e}"
        step = lambda m, c, k, fn=fn, cot=cot: torch.autograd.grad(fn(m, c, k), [m, c, k], cot)  # noqa: E731
        for mode, f in (("forward", lambda *a, fn=fn: fn(*a)), ("step", step)):
            # the torch renderer is a reference point, 10-100x slower: fewer runs keep the check short
            warmup, runs = (
                (min(args.warmup, 3), min(args.runs, 20)) if name == "torch_sum" else (args.warmup, args.runs)
            )
            with torch.set_grad_enabled(mode == "step"):
                med, p20, p80, nr = time_runs(f, sets, warmup, runs, dev)
            img = 3 * h * w * 4
            nbytes = n * 8 * 4 + img + (img + n * 8 * 4 * 2 if mode == "step" else 0)
            ops = evals * (OPS_FWD + (OPS_BWD if mode == "step" else 0))
            exps = evals * (2 if mode == "step" else 1)
            fb, fo, fe = nbytes / bw * 1e3, ops / rate * 1e3, exps / exp_rate * 1e3
            floor = max(fb, fo, fe)
            ratio = med / floor
            rows.append(
                common
                | dict(
                    renderer=name,
                    mode=mode,
                    height=h,
                    width=w,
                    gaussians=n,
                    size_scale=scale,
                    channels=3,
                    tile=args.tile,
                    k=args.k if "topk" in name else "",
                    cutoff=True,
                    median_ms=f"{med:.4f}",
                    p20_ms=f"{p20:.4f}",
                    p80_ms=f"{p80:.4f}",
                    fps=f"{1e3 / med:.0f}",
                    runs=nr,
                    evaluations=int(evals),
                    floor_bytes_ms=f"{fb:.4f}",
                    floor_fma_ms=f"{fo:.4f}",
                    floor_exp_ms=f"{fe:.4f}",
                    ratio=f"{ratio:.1f}",
                    rel_err_vs_torch=err,
                )
            )
            print(
                f"{w}x{h} N={n:>7} x{scale:<3g} {name:12s} {mode:8s} median {med:8.3f} ms (p20 {p20:.3f}, "
                f"p80 {p80:.3f}) {1e3 / med:8.0f}/s floor {floor:.4f} ms x{ratio:.1f} {err}"
            )
    del sets, fns, ref
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    sys.exit(main())
