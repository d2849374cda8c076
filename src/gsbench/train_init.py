"""``python -m gsbench.train_init``: train Instant-GI's initialisation network on a folder of images.

Writes ``<out>/init_net.pt`` (a ``torch.save`` dict: weights, network and training config, data hash,
history) for ``python -m gsbench method=instant_gi init.checkpoint=<out>/init_net.pt``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields

from .methods.instant_gi.train import RECIPES, TrainConfig

EPILOG = """recipes (explicit flags override a recipe's values):
  gpu       ../shared/data/photos at x0.5 and x0.33 (98 images), 3,000-iteration pseudo fits,
            256 px patches, 60 epochs of the 'small' net, 3 photos held out; training stops
            55 minutes after the start whatever the GPU (docs/methods_instant_gi.md)
  cpu-tiny  4 images cropped to 64x64, 20-iteration pseudo fits, 6 steps of the 'tiny' net (~1 min)

examples:
  python -m gsbench.train_init --images ../shared/data/photos --out outputs/instant_gi --recipe gpu
  python -m gsbench.train_init --images ../shared/data/photos --out /tmp/igi --recipe cpu-tiny
  python -m gsbench method=instant_gi dataset=kodak init.checkpoint=outputs/instant_gi/init_net.pt
"""


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gsbench.train_init",
        description="Train the Instant-GI initialisation network: pseudo-targets from quadtree-initialised "
        "GaussianImage fits of each image, then the network (PPM + MLP fields) on them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = TrainConfig(images="", out="")
    p.add_argument("--images", required=True, help="folder of training images (png/jpg/...; not recursive)")
    p.add_argument("--out", required=True, help="output folder: init_net.pt, pseudo/ (cached pseudo-targets)")
    p.add_argument("--recipe", choices=sorted(RECIPES), help="a preset of the options below")
    p.add_argument("--limit", type=int, help="use the first N images (by name)")
    p.add_argument("--center-crop", type=int, help="centre-crop every image to N x N pixels first")
    p.add_argument(
        "--scales", type=_floats, help=f"comma-separated resize factors, one copy each (default {d.scales})"
    )
    p.add_argument(
        "--pseudo-iterations",
        type=int,
        help=f"GaussianImage iterations per pseudo-target (default {d.pseudo_iterations}; the paper: 50000)",
    )
    p.add_argument(
        "--patch", type=int, help=f"random training patch size in px, 0 = whole images (default {d.patch})"
    )
    p.add_argument("--epochs", type=int, help=f"passes over the training images (default {d.epochs})")
    p.add_argument("--steps", type=int, help="training steps (one image each); overrides --epochs")
    p.add_argument("--lr", type=float, help=f"Adam learning rate, cosine-decayed (default {d.lr})")
    p.add_argument("--lr-min", type=float, help=f"final learning rate (default {d.lr_min})")
    p.add_argument(
        "--arch",
        choices=["tiny", "small", "base"],
        help=f"encoder size (default {d.arch}; base = the code's ConvNeXt-B)",
    )
    p.add_argument(
        "--kernel-size", type=int, help=f"dithering cell in px (default {d.kernel_size}, as the code)"
    )
    p.add_argument(
        "--val", type=int, help="hold out the last N images (all scales) for an init-PSNR check each epoch"
    )
    p.add_argument(
        "--minutes",
        type=float,
        help="stop training this many minutes after the start (pseudo-targets included; at least one "
        "epoch runs; the checkpoint is saved)",
    )
    p.add_argument("--device", help="auto (CUDA when present) | cpu | cuda")
    p.add_argument("--seed", type=int, help=f"seed of patches, order and weights (default {d.seed})")
    p.add_argument("--log-every", type=int, help="steps between log lines")
    return p


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """Defaults < recipe < explicit flags."""
    args = vars(parser().parse_args(argv))
    values = dict(RECIPES.get(args.pop("recipe") or "", {}))
    values.update({k: v for k, v in args.items() if v is not None})
    if values.get("patch") == 0:
        values["patch"] = None
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    cfg = config_from_args(argv)
    from .methods.instant_gi.train import train_init

    try:
        path = train_init(cfg)
    except FileNotFoundError as exc:
        print(f"train_init: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"checkpoint: {path}\nuse it:     python -m gsbench method=instant_gi init.checkpoint={path}")


if __name__ == "__main__":
    main()
