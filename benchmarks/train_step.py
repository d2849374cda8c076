"""CPU (or GPU) time of one GaussianImage training step: render + L2 loss + backward + Adan step.

    python benchmarks/train_step.py                       # 768x512, 10,000 Gaussians, torch backend
    python benchmarks/train_step.py --gaussians 2000 --height 512 --width 512 --device cuda

Prints the median over ``--repeats`` steps after ``--warmup`` untimed ones (device-synchronised), split
into forward and backward, plus the machine it ran on. Nothing is asserted: this is a benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from pytorch_optimizer import Adan

from gsbench.gaussians import RenderOptions
from gsbench.methods.gaussianimage import GaussianImageModel
from gsbench.runner.provenance import device_info
from gsbench.runner.timing import synchronize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--gaussians", type=int, default=10_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument(
        "--size-scale",
        type=float,
        default=1.0,
        help="multiply the initial Cholesky factors (Gaussians grow during a fit; 4 ~ sigma 4 px)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    model = GaussianImageModel(args.gaussians, args.height, args.width, seed=0).to(dev)
    with torch.no_grad():
        model._cholesky.add_(model.cholesky_bound).mul_(args.size_scale).sub_(model.cholesky_bound)
    opt = Adan(model.parameters(), lr=1e-3)
    target = torch.rand(3, args.height, args.width, generator=torch.Generator().manual_seed(0)).to(dev)
    options = RenderOptions(backend=args.backend)
    fwd, bwd, total = [], [], []
    for i in range(args.warmup + args.repeats):
        synchronize(dev)
        t0 = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model.render(options).clamp(0, 1), target)
        synchronize(dev)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(dev)
        t2 = time.perf_counter()
        if i >= args.warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            total.append(t2 - t0)
    info = device_info(dev)
    print(
        f"device: {info['name']} ({info['type']}, threads={info.get('threads', '-')}), "
        f"torch {torch.__version__}"
    )
    print(
        f"image {args.width}x{args.height}, {args.gaussians} Gaussians x{args.size_scale} size, "
        f"backend {args.backend}, median of {args.repeats} after {args.warmup} warm-up"
    )
    print(f"forward          {statistics.median(fwd) * 1e3:8.1f} ms")
    print(f"backward + Adan  {statistics.median(bwd) * 1e3:8.1f} ms")
    print(f"training step    {statistics.median(total) * 1e3:8.1f} ms  (min {min(total) * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
