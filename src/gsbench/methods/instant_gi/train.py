"""Training the initialisation network on a folder of images (``python -m gsbench.train_init``).

As the public code's ``train_init_net.py``: one image per step, loss = focal MSE between the predicted
and the pseudo PPM + RGB loss (0.7 weighted MSE + 0.3 weighted (1 - SSIM map), pixel weights
``clamp(1 / (PPM + 0.01), 1, 10)``) of the network's Gaussians rendered by the sum renderer + a scale
penalty ``10 relu(0.5 - scale)``, Adam with cosine decay to ``lr_min``. Pseudo-PPMs come from
:func:`.quadtree.pseudo_target` and are cached under ``<out>/pseudo/``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...data.images import load_image
from ...gaussians import RenderOptions, render, scale_rot_to_cov
from ..base import FitContext, psnr_from_mse
from .checkpoint import data_hash, file_sha256, save_checkpoint
from .model import InitNet, NetConfig
from .points import propose
from .quadtree import pseudo_target

log = logging.getLogger("gsbench.train_init")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class TrainConfig:
    """Every setting of a training run (stored in the checkpoint); see ``python -m gsbench.train_init -h``."""

    images: str
    out: str
    limit: int | None = None
    center_crop: int | None = None
    scales: tuple[float, ...] = (1.0,)
    pseudo_iterations: int = 2000
    patch: int | None = 256
    epochs: int = 40
    steps: int | None = None
    lr: float = 1e-3
    lr_min: float = 1e-5
    arch: str = "small"
    kernel_size: int = 3
    val: int = 0
    minutes: float | None = None
    device: str = "auto"
    seed: int = 0
    log_every: int = 20


RECIPES = {
    # ../shared/data/photos (49 photos, ~1 MP): x0.5 and x0.33 copies like DIV2K x2/x3 (98 images),
    # 3,000-iteration pseudo fits, 256 px patches, 60 epochs; training stops 55 minutes after the start
    "gpu": {
        "scales": (0.5, 0.33),
        "pseudo_iterations": 3000,
        "patch": 256,
        "epochs": 60,
        "arch": "small",
        "val": 3,
        "minutes": 55.0,
    },
    # a smoke test: 4 images cropped to 64 x 64, 20-iteration pseudo fits, 6 steps of the smallest net
    "cpu-tiny": {
        "limit": 4,
        "center_crop": 64,
        "pseudo_iterations": 20,
        "patch": None,
        "steps": 6,
        "arch": "tiny",
        "val": 0,
        "device": "cpu",
        "log_every": 1,
    },
}


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files of ``folder`` (not recursive), sorted by name, the first ``limit``."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"--images {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files[:limit] if limit else files


def prepare(path: Path, scale: float, crop: int | None) -> torch.Tensor:
    """Load, resize by ``scale`` (bicubic, antialiased), centre-crop to ``crop``: ``[3, H, W]`` in [0, 1]."""
    image, _ = load_image(path)
    if scale != 1.0:
        size = (max(16, round(image.shape[1] * scale)), max(16, round(image.shape[2] * scale)))
        image = F.interpolate(image[None], size=size, mode="bicubic", antialias=True)[0].clamp(0, 1)
    if crop:
        _, h, w = image.shape
        top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        image = image[:, top : top + crop, left : left + crop]
    return image.contiguous()


def focal_mse(pred: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """The code's FocalMSELoss: ``(1 - exp(-|e|))^gamma e^2``, mean."""
    err = (pred - target).abs()
    return ((1 - torch.exp(-err)) ** gamma * err**2).mean()


def ssim_map(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM ``[B, C, H, W]`` (Gaussian window, zero padding, as the code's ssim.py)."""
    g = torch.exp(-((torch.arange(size, dtype=x.dtype, device=x.device) - size // 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    win = (g[:, None] * g[None, :]).expand(c, 1, size, size).contiguous()

    def blur(t):
        return F.conv2d(t, win, padding=size // 2, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))


def network_loss(net: InitNet, image: torch.Tensor, gt_ppm: torch.Tensor, options: RenderOptions):
    """One training step's loss for ``image`` ``[3, H, W]`` and its pseudo-PPM ``[H, W]``.

    Returns:
        ``(loss, stats)``; stats: ``pf``, ``rgb``, ``scale`` loss terms, ``psnr`` of the render, ``count``.
    """
    _, h, w = image.shape
    fmap, ppm = net.features(image[None])
    tri, count = propose(ppm.detach(), net.cfg.kernel_size)
    g = net.gaussians(image[None], fmap, tri)
    out = render(
        g.pixel_means(h, w), scale_rot_to_cov(g.scale, g.rotation * 2 * math.pi), g.color, h, w, options
    )
    pf_loss = focal_mse(ppm, gt_ppm)
    weight = torch.clamp(1.0 / (ppm.detach() + 0.01), 1.0, 10.0)
    mse = ((out - image) ** 2 * weight).mean()
    ssim = ((1 - ssim_map(out[None], image[None])[0]) * weight).mean()
    rgb_loss = 0.7 * mse + 0.3 * ssim
    scale_loss = 10 * torch.relu(0.5 - g.scale).mean()
    stats = {
        "pf": pf_loss.item(),
        "rgb": rgb_loss.item(),
        "scale": scale_loss.item(),
        "count": count["count"],
        "psnr": psnr_from_mse(F.mse_loss(out.detach().clamp(0, 1), image).item()),
    }
    return pf_loss + rgb_loss + scale_loss, stats


def build_dataset(cfg: TrainConfig, files: list[Path], device: torch.device) -> list[dict]:
    """Images and pseudo-PPMs (cached in ``<out>/pseudo``; a cache entry names its image's hash)."""
    cache = Path(cfg.out) / "pseudo"
    cache.mkdir(parents=True, exist_ok=True)
    ctx = FitContext(device=device, progress=False, log_every=0)
    items = []
    for path in files:
        sha = file_sha256(path)
        for scale in cfg.scales:
            image = prepare(path, scale, cfg.center_crop)
            key = f"{path.stem}_x{scale:g}_c{cfg.center_crop or 0}_i{cfg.pseudo_iterations}"
            npz = cache / f"{key}.npz"
            meta = None
            if npz.exists():
                with np.load(npz) as z:
                    if str(z["sha256"]) == sha and z["ppm"].shape == tuple(image.shape[1:]):
                        meta = {k: z[k].item() for k in ("num_gaussians", "psnr_init", "psnr", "seconds")}
                        ppm = z["ppm"]
            if meta is None:
                ctx.label = key
                res = pseudo_target(image.to(device), cfg.pseudo_iterations, ctx)
                ppm = res.pop("ppm")
                meta = res
                np.savez(npz, ppm=ppm, sha256=sha, **meta)
                log.info(
                    "pseudo %s: %d Gaussians, %.2f -> %.2f dB in %.1f s",
                    key,
                    meta["num_gaussians"],
                    meta["psnr_init"],
                    meta["psnr"],
                    meta["seconds"],
                )
            items.append(
                {"name": key, "file": path.stem, "image": image, "ppm": torch.from_numpy(ppm), **meta}
            )
    return items


def _patch(item: dict, size: int | None, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    image, ppm = item["image"], item["ppm"]
    _, h, w = image.shape
    if not size or (h <= size and w <= size):
        return image, ppm
    top, left = rng.randint(0, max(0, h - size)), rng.randint(0, max(0, w - size))
    return image[:, top : top + size, left : left + size], ppm[top : top + size, left : left + size]


@torch.no_grad()
def evaluate(net: InitNet, items: list[dict], device: torch.device, options: RenderOptions) -> dict:
    """Init-only PSNR and Gaussian count of the network on whole images (eval mode)."""
    net.eval()
    psnrs, counts = [], []
    for item in items:
        image = item["image"].to(device)
        _, h, w = image.shape
        fmap, ppm = net.features(image[None])
        tri, count = propose(ppm, net.cfg.kernel_size)
        g = net.gaussians(image[None], fmap, tri)
        out = render(
            g.pixel_means(h, w), scale_rot_to_cov(g.scale, g.rotation * 2 * math.pi), g.color, h, w, options
        )
        psnrs.append(psnr_from_mse(F.mse_loss(out.clamp(0, 1), image).item()))
        counts.append(count["count"])
    net.train()
    return {"psnr": float(np.mean(psnrs)), "num_gaussians": float(np.mean(counts))} if items else {}


def train_init(cfg: TrainConfig) -> Path:
    """Run the whole recipe; returns the checkpoint path (``<out>/init_net.pt``)."""
    start = time.perf_counter()
    device = torch.device(
        "cuda"
        if cfg.device == "auto" and torch.cuda.is_available()
        else ("cpu" if cfg.device == "auto" else cfg.device)
    )
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    files = list_images(cfg.images, cfg.limit)
    settings = {k: getattr(cfg, k) for k in ("limit", "center_crop", "scales", "pseudo_iterations")}
    data = {
        "root": str(Path(cfg.images).expanduser()),
        "files": [f.name for f in files],
        "sha256": data_hash(files, settings),
        "settings": settings,
    }
    items = build_dataset(cfg, files, device)
    # hold out whole photos (all their scales): the last ``val`` files, keeping at least one to train on
    held = {f.stem for f in files[len(files) - min(cfg.val, len(files) - 1) :]} if cfg.val else set()
    val = [it for it in items if it["file"] in held]
    train = [it for it in items if it["file"] not in held]
    pseudo_seconds = time.perf_counter() - start
    net = InitNet(NetConfig.for_arch(cfg.arch, kernel_size=cfg.kernel_size)).to(device).train()
    total = cfg.steps or cfg.epochs * len(train)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1), eta_min=cfg.lr_min)
    options = RenderOptions()
    history: list[dict] = []
    deadline = start + 60 * cfg.minutes if cfg.minutes else math.inf
    out_path = Path(cfg.out) / "init_net.pt"
    order: list[dict] = []
    step, running = 0, []
    pseudo = {k: float(np.mean([it[k] for it in items])) for k in ("num_gaussians", "psnr_init", "psnr")}

    def save(final: bool) -> None:
        save_checkpoint(
            out_path,
            net,
            config={**asdict(cfg), "scales": list(cfg.scales)},
            data=data,
            pseudo=pseudo,
            history=history,
            steps=step,
            final=final,
            seconds=time.perf_counter() - start,
            torch_version=str(torch.__version__),
        )

    # the time guard covers the whole run (pseudo-targets included) but always lets one epoch finish
    while step < total and (time.perf_counter() < deadline or step < len(train)):
        if not order:
            order = train[:]
            rng.shuffle(order)
        item = order.pop()
        image, ppm = _patch(item, cfg.patch, rng)
        loss, stats = network_loss(net, image.to(device), ppm.to(device), options)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        running.append(stats)
        epoch_end = not order
        if step % cfg.log_every == 0 or step == total or epoch_end:
            entry = {
                "step": step,
                "seconds": time.perf_counter() - start,
                "lr": sched.get_last_lr()[0],
                **{k: float(np.mean([s[k] for s in running])) for k in running[0]},
            }
            if epoch_end and val:
                entry["val"] = evaluate(net, val, device, options)
            history.append(entry)
            running = []
            log.info(
                "step %d/%d %s",
                step,
                total,
                json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}),
            )
        if epoch_end:
            save(final=False)
    if val:
        history.append(
            {"step": step, "seconds": time.perf_counter() - start, "val": evaluate(net, val, device, options)}
        )
    save(final=True)
    log.info(
        "pseudo-targets %.0f s, network %.0f s, %d steps -> %s",
        pseudo_seconds,
        time.perf_counter() - start - pseudo_seconds,
        step,
        out_path,
    )
    return out_path
