"""Pseudo-targets for training the network, as the paper: quadtree-initialised GaussianImage fits.

For each training image the public code (``quard_image.py`` + ``train.py --init quard``) splits the
blurred image with a quadtree until regions are flat, triangulates the region centres, puts one
Gaussian on each triangle's ellipse (plus a round one on vertices with much ellipse area around them),
fits GaussianImage_RS to the image (50,000 iterations there), and turns the fitted Gaussians' positions
into a density map, the pseudo position probability map (``gt_pf.npy``): ``10 / sqrt(d10)`` with ``d10``
the distance from a pixel to its 10th nearest Gaussian, clipped to mean +- 3 std and scaled to [0, 1].
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch
from PIL import Image, ImageFilter
from scipy.spatial import Delaunay, cKDTree

from ..base import FitContext
from .finetune import Clock, finetune, rs_model_from
from .model import sample
from .points import fit_ellipses

MAGIC = 0.27  # the code's factor from an ellipse's full axis length to the Gaussian's std dev
MIN_SIZE = 4


def _threshold(size: int) -> float:
    """The code's size-dependent flatness threshold: 0.02 at 4 px, 0.001 at 100 px (std of [0, 1] values)."""
    return -0.0001979 * size + 0.0207916


def quadtree_centres(image: torch.Tensor) -> np.ndarray:
    """Centres (x, y) in pixels of the quadtree's flat regions, ``[P, 2]``.

    Args:
        image: ``[3, H, W]`` in [0, 1]; blurred (PIL radius 1) and zero-padded to a square as the code.
    """
    _, height, width = image.shape
    arr = (image.permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
    blurred = np.asarray(Image.fromarray(arr).filter(ImageFilter.GaussianBlur(1)), dtype=np.float64) / 255
    side = max(height, width)
    square = np.zeros((side, side, 3))
    square[:height, :width] = blurred
    s1 = np.pad(square.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
    s2 = np.pad((square**2).cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))

    def flat(x: int, y: int, xs: int, ys: int) -> bool:
        def box(s):
            return s[y + ys, x + xs] - s[y, x + xs] - s[y + ys, x] + s[y, x]

        n = xs * ys
        var = np.maximum(box(s2) / n - (box(s1) / n) ** 2, 0)
        return bool(np.sqrt(var).max() < _threshold(max(xs, ys)))

    leaves = []
    queue = deque([(0, 0, side, side)])
    while queue:
        x, y, xs, ys = queue.popleft()
        if min(xs, ys) <= MIN_SIZE or flat(x, y, xs, ys):
            leaves.append((x, y, xs, ys))
            continue
        hx, hy = xs // 2, ys // 2
        quads = [
            (x, y, hx, hy),
            (x + hx, y, xs - hx, hy),
            (x, y + hy, hx, ys - hy),
            (x + hx, y + hy, xs - hx, ys - hy),
        ]
        done = [False] * 4
        # as the code: a flat left/right (then top/bottom) half is kept whole instead of two quadrants
        for half, idx in (((x, y, hx, ys), (0, 2)), ((x + hx, y, xs - hx, ys), (1, 3))):
            if flat(*half):
                leaves.append(half)
                for i in idx:
                    done[i] = True
        for half, idx in (((x, y, xs, hy), (0, 1)), ((x, y + hy, xs, ys - hy), (2, 3))):
            if not any(done[i] for i in idx) and flat(*half):
                leaves.append(half)
                for i in idx:
                    done[i] = True
        queue.extend(q for q, d in zip(quads, done, strict=True) if not d)
    # centre of pixels x .. x + xs - 1 in gsbench coordinates (the code's x + xs / 2 is the same place)
    pts = np.array([(x + (xs - 1) / 2, y + (ys - 1) / 2) for x, y, xs, ys in leaves], dtype=np.float64)
    return pts[(pts[:, 0] <= width - 1) & (pts[:, 1] <= height - 1)]


def quadtree_gaussians(image: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The code's quadtree initialisation of one image.

    Returns:
        ``xy`` ``[N, 2]`` in [-1, 1], ``scale`` ``[N, 2]`` px, ``rotation`` ``[N]`` (fraction of 2 pi) and
        ``color`` ``[N, 3]`` (the image sampled at the centres), float32 on ``image``'s device.
    """
    _, height, width = image.shape
    corners = [[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]]
    pts = np.unique(np.concatenate([quadtree_centres(image), corners]), axis=0)
    simplices = Delaunay(pts).simplices
    centres, semi, angles = fit_ellipses(torch.from_numpy(pts[simplices]))
    keep = (semi[:, 1] <= 10 * semi[:, 0]).numpy()  # the code drops slivers (axis ratio > 10)
    # the code's "area" is pi times the product of the full axes; it is summed on each triangle's vertices
    area = np.where(keep, math.pi * 4 * (semi[:, 0] * semi[:, 1]).numpy(), 0.0)
    per_vertex = np.zeros(len(pts))
    np.add.at(per_vertex, simplices.reshape(-1), np.repeat(area, 3))
    big = np.nonzero(per_vertex > 2 * per_vertex.mean())[0]
    radius = np.sqrt(per_vertex[big] / per_vertex.mean() * area.mean() / math.pi) * 0.4  # a full-axis length
    centres = np.concatenate([centres.numpy()[keep], pts[big]])
    full_axes = np.concatenate([2 * semi.numpy()[keep], np.repeat(radius[:, None], 2, 1)])
    rotation = np.concatenate([angles.numpy()[keep] / (2 * math.pi), np.zeros(len(big))])
    size = np.array([width, height], dtype=np.float64)
    dev = image.device
    xy = torch.from_numpy(2 * centres / size - 1).float().to(dev)
    scale = torch.from_numpy(full_axes * MAGIC).float().to(dev)
    rot = torch.from_numpy(np.maximum(rotation, 0.001 / 360)).float().to(dev)
    color = sample(image[None], torch.from_numpy(centres).float().to(dev))
    return xy, scale, rot, color


def density_map(means: torch.Tensor, height: int, width: int, k: int = 10) -> np.ndarray:
    """The pseudo-PPM ``[H, W]`` in [0, 1] from Gaussian centres ``[N, 2]`` (pixels); see the module doc."""
    pts = means.detach().cpu().double().numpy()
    k = min(k, len(pts))
    yy, xx = np.mgrid[0:height, 0:width]
    dist, _ = cKDTree(pts).query(np.stack([xx.ravel(), yy.ravel()], 1), k)
    far = dist.reshape(len(xx.ravel()), -1)[:, -1]
    density = k / np.sqrt(np.maximum(far, 1e-6))
    lo = max(density.mean() - 3 * density.std(), density.min())
    hi = min(density.mean() + 3 * density.std(), density.max())
    return np.clip((density - lo) / max(hi - lo, 1e-12), 0, 1).reshape(height, width).astype(np.float32)


def pseudo_target(image: torch.Tensor, iterations: int, ctx: FitContext) -> dict:
    """Quadtree init, GaussianImage-RS fit for ``iterations`` steps, density map.

    Returns:
        ``{"ppm": [H, W] float32 array, "num_gaussians", "psnr_init", "psnr", "seconds"}``.
    """
    _, height, width = image.shape
    clock = Clock(ctx.device)
    model = rs_model_from(*quadtree_gaussians(image), height, width)
    psnr_init = clock.psnr(model, image, ctx)
    _, marks = finetune(model, image, ctx, clock, iterations=iterations)
    with torch.no_grad():
        means = model.gaussians()[0]
    return {
        "ppm": density_map(means, height, width),
        "num_gaussians": model.num_gaussians,
        "psnr_init": psnr_init,
        "psnr": marks[-1]["psnr"],
        "seconds": marks[-1]["seconds"],
    }
