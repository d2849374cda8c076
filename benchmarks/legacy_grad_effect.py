"""Effect of the official GaussianImage gradient (``render.legacy_cholesky_grad``) on small Kodak crops.

Fits ``gi`` on centre crops of Kodak images twice per seed, from the same initial values: with the exact
Cholesky gradient and with the official kernel's doubled off-diagonal terms, and prints the PSNR of each
and their difference. The default setting (three 96x96 crops, 240 Gaussians, 3,000 iterations, seeds 1
and 2) is the side-by-side protocol of docs/methods.md ("Method fidelity"), where the authors' code scored
about 0.18 dB below gsbench's exact gradient; the legacy gradient should show a gap of that size.

    python benchmarks/legacy_grad_effect.py --images kodim01 kodim05 kodim23 --iterations 3000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from gsbench.data import load_image
from gsbench.gaussians import RenderOptions
from gsbench.methods import FitContext, get_method


def crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size x size`` crop of ``[3, H, W]``."""
    _, h, w = image.shape
    top, left = (h - size) // 2, (w - size) // 2
    return image[:, top : top + size, left : left + size].contiguous()


def fit_psnr(image: torch.Tensor, n: int, iterations: int, seed: int, legacy: bool) -> float:
    method = get_method("gi", {}, {"iterations": iterations})
    ctx = FitContext(
        seed=seed, progress=False, log_every=0,
        render=RenderOptions(backend="torch", legacy_cholesky_grad=legacy),
    )  # fmt: skip
    history = method.fit(image, n, ctx).history
    return float(history[-1]["psnr"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    default_root = Path(os.environ.get("GSBENCH_DATA", shared))
    parser.add_argument("--kodak", type=Path, default=default_root / "kodak")
    parser.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim23"])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--gaussians", type=int, default=240)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print("| image | seed | exact (dB) | legacy (dB) | legacy - exact |")
    print("| --- | --- | --- | --- | --- |")
    diffs, start = [], time.perf_counter()
    for name in args.images:
        image, _ = load_image(args.kodak / f"{name}.png")
        image = crop(image, args.size)
        for seed in args.seeds:
            exact = fit_psnr(image, args.gaussians, args.iterations, seed, False)
            legacy = fit_psnr(image, args.gaussians, args.iterations, seed, True)
            diffs.append(legacy - exact)
            print(f"| {name} | {seed} | {exact:.3f} | {legacy:.3f} | {legacy - exact:+.3f} |", flush=True)
    mean = sum(diffs) / len(diffs)
    print(f"\nmean legacy - exact: {mean:+.3f} dB over {len(diffs)} fits "
          f"({time.perf_counter() - start:.0f} s, {torch.get_num_threads()} threads)")  # fmt: skip


if __name__ == "__main__":
    main()
