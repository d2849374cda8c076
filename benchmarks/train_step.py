"""Training-step time per method, torch against numba (or any two backends), side by side in one run.

    python benchmarks/train_step.py                                  # gi gi_pp image_gs sgi, 768x512, 10k
    python benchmarks/train_step.py --methods gi --threads 1 --repeats 10
    python benchmarks/train_step.py --backends torch triton --device cuda

One step = the method's render + its loss + backward + its optimiser's step, on the method's own model
(GaussianImage and GaussianImage++: L2 on the clamped render, Adan; Image-GS: top-K render, L1 + 0.1 (1 -
SSIM), Adam;
SGI: the seed MLPs decoding Gaussians, L2, Adam). Each runs at the initial Gaussian sizes and at grown
ones (``--grow``: covariances x grow^2, the scale Gaussians reach during a fit), from the same seed for
every backend. Also printed: the rasterizer alone (forward + backward) and its floor, the flops of the
Gaussian-pixel pairs it must touch at the machine's measured matmul rate. Medians of ``--repeats``
after ``--warmup``; timings on a shared machine are noisy, hence the ratios from one run.
Nothing is asserted: this is a benchmark.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from pytorch_optimizer import Adan

from gsbench.gaussians import RenderOptions, cov_radius, cov_to_conic
from gsbench.runner.provenance import device_info
from gsbench.runner.timing import synchronize

FLOPS_PER_PAIR = 47  # forward + backward per Gaussian-pixel pair (weight, colour, five geometry sums)
Step = Callable[[], None]


def build(method: str, n: int, h: int, w: int, grow: float, options: RenderOptions, dev) -> tuple:
    """``(step, gaussians)`` for ``method``: one training step and a function giving (means, cov, C)."""
    target = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0)).to(dev)
    if method in ("gi", "gi_pp"):
        if method == "gi":
            from gsbench.methods.gi.model import GaussianImageModel

            model = GaussianImageModel(n, h, w, seed=0).to(dev)
            with torch.no_grad():
                model.cholesky.add_(model.cholesky_bound).mul_(grow).sub_(model.cholesky_bound)
            gaussians = model.gaussians
        else:
            from gsbench.methods.gi_pp.model import GaussianImagePPModel

            model = GaussianImagePPModel(n, h, w, seed=0).to(dev)
            with torch.no_grad():
                model.cov.mul_(grow * grow)

            def gaussians():
                return model.means, model.stored_cov(), model.colors

        opt = Adan(model.parameters(), lr=1e-3)

        def loss():
            return F.mse_loss(model.render(options).clamp(0, 1), target)

    elif method == "image_gs":
        from gsbench.methods.image_gs.codec import to_gaussians
        from gsbench.methods.image_gs.config import ImageGSConfig
        from gsbench.methods.image_gs.model import initial_model

        cfg = ImageGSConfig.from_mapping({})
        model = initial_model(target, n, cfg, torch.Generator().manual_seed(0)).to(dev)
        with torch.no_grad():
            model.scale.mul_(1.0 / grow if cfg.inverse_scale else grow)
        opt = model.optimizer()

        def gaussians():
            return to_gaussians(model.values(), h, w, cfg.inverse_scale)

        from gsbench.methods import get_method

        method_obj = get_method("image_gs", {}, {"iterations": 1})

        def loss():
            return method_obj.loss(model.render(options), target)  # L1 + 0.1 (1 - SSIM), as the fit

    elif method == "sgi":
        from gsbench.methods.base import FitContext
        from gsbench.methods.sgi.method import SGI

        ctx = FitContext(device=dev, render=options, progress=False, log_every=0)
        model, _ = SGI({}, {"iterations": 1000}).build_pyramid_fit(target, n, ctx)
        while model.level > 0:
            model.to_finer_level()  # full resolution, the longest stage
        with torch.no_grad():
            model.log_scaling.add_(math.log(grow))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        gaussians = model.gaussians

        def loss():
            from gsbench.gaussians import render

            return F.mse_loss(render(*model.gaussians(), h, w, options).clamp(0, 1), target)

    else:
        raise ValueError(f"unknown method {method!r}")

    def step() -> None:
        value = loss()
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()

    return step, gaussians


def raster_only(method: str, gaussians, h: int, w: int, options: RenderOptions) -> Step:
    """Forward + backward of the rasterizer alone on a detached copy of the method's Gaussians."""
    from gsbench.gaussians import render, render_topk

    means, cov, colors = (t.detach().clone().requires_grad_() for t in gaussians())
    cot = torch.rand(colors.shape[1], h, w, generator=torch.Generator().manual_seed(1)).to(means)

    def step() -> None:
        if method == "image_gs":
            opts = RenderOptions(options.backend, cutoff=False)  # Image-GS renders without the cut-off
            out = render_topk(means, cov, colors, h, w, opts, eps=1e-4)
        else:
            out = render(means, cov, colors, h, w, options)
        torch.autograd.grad((out * cot).sum(), [means, cov, colors])

    return step


@njit(cache=True)
def count_pairs(means, conic, radius, h, w, cutoff):
    """Gaussian-pixel pairs with a weight: inside the footprint box and, with the cut-off, w >= 1/255."""
    total = 0
    for g in range(means.shape[0]):
        mx, my, r = means[g, 0], means[g, 1], radius[g]
        if not r > 0:
            continue
        a, b, c = conic[g, 0], conic[g, 1], conic[g, 2]
        for y in range(max(0, int(np.ceil(my - r))), min(h - 1, int(np.floor(my + r))) + 1):
            for x in range(max(0, int(np.ceil(mx - r))), min(w - 1, int(np.floor(mx + r))) + 1):
                dx, dy = x - mx, y - my
                s = 0.5 * a * dx * dx + 0.5 * c * dy * dy + b * dx * dy
                if s >= 0 and (not cutoff or s <= 5.541263545158426):
                    total += 1
    return total


def pairs_of(gaussians, h: int, w: int, cutoff: bool) -> int:
    means, cov, _ = (t.detach().double().cpu() for t in gaussians())
    conic, valid = cov_to_conic(cov)
    r = cov_radius(cov, valid)
    return int(count_pairs(means.numpy(), conic.numpy(), r.numpy(), h, w, cutoff))


def matmul_gflops(dev, clock=time.perf_counter) -> float:
    """The machine's practical float32 peak: a 1024^3 matmul with the current thread count, timed with
    the clock the steps are timed with."""
    a = torch.rand(1024, 1024, device=dev)
    a @ a
    synchronize(dev)
    t0 = clock()
    for _ in range(5):
        a @ a
    synchronize(dev)
    return 5 * 2 * 1024**3 / (clock() - t0) / 1e9


def median_ms(step: Step, dev, warmup: int, repeats: int, clock=time.perf_counter) -> float:
    times = []
    for i in range(warmup + repeats):
        synchronize(dev)
        t0 = clock()
        step()
        synchronize(dev)
        if i >= warmup:
            times.append(clock() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["gi", "gi_pp", "image_gs", "sgi"])
    ap.add_argument("--backends", nargs=2, default=["torch", "numba"], help="baseline, candidate")
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--gaussians", type=int, default=10_000)
    ap.add_argument("--grow", type=float, default=4.0, help="grown sizes: standard deviations x grow")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch (and numba) CPU threads (0: default)")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU time, steadier than wall time on a shared machine (with --threads 1)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev, h, w = torch.device(args.device), args.height, args.width
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    gflops = matmul_gflops(dev, clock)
    base, cand = args.backends
    info = device_info(dev)
    threads = info.get("threads", "-")
    print(f"device: {info['name']} ({info['type']}, threads={threads}), torch {torch.__version__}")
    print(
        f"image {w}x{h}, {args.gaussians} Gaussians; median {args.clock} time of {args.repeats} after "
        f"{args.warmup} warm-up"
    )
    print(f"floor: {FLOPS_PER_PAIR} flop per Gaussian-pixel pair at the matmul rate, {gflops:.0f} GFLOP/s")
    print()
    head = (
        f"{'method':9} {'sizes':8} {'pairs':>9} {'floor ms':>9} | {base + ' step':>11} {cand + ' step':>11} "
        f"{'speed-up':>8} | {base + ' rast':>11} {cand + ' rast':>11} {'speed-up':>8} {'x floor':>8}"
    )
    print(head)
    print("-" * len(head))
    for method in args.methods:
        for label, grow in (("initial", 1.0), (f"grown x{args.grow:g}", args.grow)):
            row = {}
            for backend in (base, cand):
                opts = RenderOptions(backend=backend)
                step, gaussians = build(method, args.gaussians, h, w, grow, opts, dev)
                rast = raster_only(method, gaussians, h, w, opts)
                row[backend] = [median_ms(f, dev, args.warmup, args.repeats, clock) for f in (step, rast)]
            pairs = pairs_of(gaussians, h, w, cutoff=method != "image_gs")
            floor = pairs * FLOPS_PER_PAIR / (gflops * 1e9) * 1e3
            (sb, rb), (sc, rc) = row[base], row[cand]
            print(
                f"{method:9} {label:8} {pairs:9d} {floor:9.2f} | {sb:11.1f} {sc:11.1f} {sb / sc:7.1f}x | "
                f"{rb:11.1f} {rc:11.1f} {rb / rc:7.1f}x {rc / floor:7.0f}x",
                flush=True,
            )
    if "image_gs" in args.methods:
        ssim_line(h, w, dev, args.warmup, args.repeats, clock)


def ssim_line(h: int, w: int, dev, warmup: int, repeats: int, clock) -> None:
    """Image-GS's SSIM term (forward + backward) with pytorch_msssim's convolutions and with ours."""
    from pytorch_msssim import ssim

    from gsbench.gaussians.ssim_loss import ssim_loss

    x, y = (torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(s)).to(dev) for s in (2, 3))

    def timed(fn) -> float:
        def step() -> None:
            a = x.clone().requires_grad_()
            fn(a, y).backward()

        return median_ms(step, dev, warmup, repeats, clock)

    ref = timed(lambda a, b: 1 - ssim(a, b, data_range=1.0, win_size=11))
    ours = timed(lambda a, b: 1 - ssim_loss(a, b))
    print(f"\nSSIM loss forward + backward: pytorch_msssim {ref:.1f} ms, gsbench {ours:.1f} ms", end="")
    print(f" ({ref / ours:.1f}x)")


if __name__ == "__main__":
    main()
