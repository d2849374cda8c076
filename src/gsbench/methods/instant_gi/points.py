"""From a position probability map to triangles: pooling, Floyd–Steinberg dithering, Delaunay, ellipses.

Instant-GI (Zeng et al., ICCV 2025) turns the network's position probability map (PPM) into points by
max-pooling it over ``k x k`` cells and dithering the pooled map (at most one point per cell), adds
points along the image border, triangulates them, and fits one ellipse per triangle. **Every triangle
becomes one Gaussian**, so the Gaussian count is about twice the number of dithered points.

Everything here is plain torch / numpy / scipy (the public code uses CUDA extensions for dithering and
ellipse fitting). Coordinates are gsbench pixels: pixel ``(i, j)`` has its centre at ``x = j, y = i``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import Delaunay, cKDTree

# cv2.fitEllipse on a triangle's 3 vertices + 3 edge midpoints (what the public code fits) is the ellipse
# (x - c)^T M^-1 (x - c) = 17/10, M the vertices' covariance: see fit_ellipses.
ELLIPSE_LEVEL = 1.7


def pool_max(ppm: torch.Tensor, k: int) -> torch.Tensor:
    """Max of the PPM over ``k x k`` cells (edges padded by replication, as the code).

    Args:
        ppm: ``[H, W]`` probabilities in [0, 1].
        k: cell size in pixels (the code's ``kernel_size``, 3).
    Returns:
        ``[ceil(H / k), ceil(W / k)]``.
    """
    h, w = ppm.shape
    padded = F.pad(ppm[None, None], (0, (-w) % k, 0, (-h) % k), mode="replicate")
    return F.max_pool2d(padded, k)[0, 0]


def floyd_steinberg(prob: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Floyd–Steinberg error diffusion of a map in [0, 1] to a binary mask.

    The number of ones is about ``prob.sum()`` (error diffusion preserves the mass, up to what leaves
    across the borders). Runs as wavefronts ``t = j + 2 i``: a cell only passes error to cells of later
    wavefronts, so each wavefront is one vectorised step (``W + 2H`` steps instead of ``H W``).

    Args:
        prob: ``[h, w]`` values in [0, 1] (any device).
    Returns:
        ``[h, w]`` bool mask, identical to the sequential raster-order algorithm.
    """
    h, w = prob.shape
    stride = w + 2  # one margin column each side and one margin row below take the border error
    buf = torch.zeros((h + 1) * stride, dtype=torch.float64, device=prob.device)
    buf.view(h + 1, stride)[:h, 1 : w + 1] = prob.to(torch.float64)
    out = torch.zeros(h * w, dtype=torch.bool, device=prob.device)
    weights = torch.tensor([7, 3, 5, 1], dtype=torch.float64, device=prob.device) / 16
    offsets = torch.tensor([1, stride - 1, stride, stride + 1], device=prob.device)
    for t in range(w + 2 * (h - 1)):
        i = torch.arange(max(0, math.ceil((t - w + 1) / 2)), min(h - 1, t // 2) + 1, device=prob.device)
        j = t - 2 * i
        idx = i * stride + j + 1
        value = buf[idx]
        on = value >= threshold
        out[i * w + j] = on
        err = value - on.to(torch.float64)
        buf.index_add_(0, (idx[:, None] + offsets).reshape(-1), (err[:, None] * weights).reshape(-1))
    return out.view(h, w)


def scale_to_mass(pooled: torch.Tensor, mass: float, iters: int = 40) -> torch.Tensor:
    """``clamp(alpha * pooled, 0, 1)`` with ``alpha`` chosen (bisection) so that its sum is ``mass``.

    Dithering then yields about ``mass`` points: this is how a Gaussian budget is applied.

    Args:
        pooled: ``[h, w]`` pooled map in [0, 1].
        mass: wanted sum (clipped to [0, h w]).
    Returns:
        ``[h, w]`` rescaled map.
    """
    total = float(pooled.sum())
    mass = min(max(mass, 0.0), float(pooled.numel()))
    if total <= 0:
        return pooled
    if mass <= total:  # scaling down never clips: exact
        return pooled * (mass / total)
    lo, hi = 1.0, float(pooled.numel()) / max(float(pooled[pooled > 0].min()), 1e-12)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float((pooled * mid).clamp(max=1).sum()) < mass else (lo, mid)
    return (pooled * hi).clamp(max=1)


def cells_to_points(mask: torch.Tensor, k: int, height: int, width: int) -> torch.Tensor:
    """Centres (x, y) in pixels of the dithered cells, ``[P, 2]`` float32.

    A cell covers pixels ``c k .. c k + k - 1``; cells cut by the image edge use their inside part.
    """
    rows, cols = torch.nonzero(mask, as_tuple=True)
    x0, y0 = cols * k, rows * k
    x = 0.5 * (x0 + torch.clamp(x0 + k - 1, max=width - 1)).float()
    y = 0.5 * (y0 + torch.clamp(y0 + k - 1, max=height - 1)).float()
    return torch.stack([x, y], dim=1).cpu()


def add_boundary_points(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Points along the four image edges every 3 mean nearest-neighbour distances (as the code).

    They make the triangulation cover the whole image. Args: ``points`` ``[P, 2]``; returns
    ``[P + B, 2]`` float64, duplicates removed.
    """
    if len(points) >= 2:
        dist, _ = cKDTree(points).query(points, 2)
        interval = 3 * float(dist[:, 1].mean())
    else:
        interval = float(max(height, width))
    nx = max(2, math.ceil(width / max(interval, 1e-6)))
    ny = max(2, math.ceil(height / max(interval, 1e-6)))
    xs, ys = np.linspace(0, width - 1, nx), np.linspace(0, height - 1, ny)
    edges = [
        np.stack([xs, np.zeros_like(xs)], 1),
        np.stack([xs, np.full_like(xs, height - 1)], 1),
        np.stack([np.zeros_like(ys), ys], 1),
        np.stack([np.full_like(ys, width - 1), ys], 1),
    ]
    return np.unique(np.concatenate([np.asarray(points, np.float64).reshape(-1, 2), *edges]), axis=0)


def fit_ellipses(triangles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ellipse the public code fits to each triangle (cv2.fitEllipse of vertices + edge midpoints).

    cv2's algebraic fit (a free conic about the points' mean, then the quadratic part refitted with the
    centre fixed) commutes with affine maps, and every triangle is an affine image of an equilateral
    one, where by symmetry the fit is a circle about the centroid whose radius r satisfies
    ``r^2 = sum d^4 / sum d^2 = 17/20 R^2`` (d: the 6 points' distances, R the circumradius). Hence the
    closed form: centre = centroid ``c``, ``(x - c)^T M^-1 (x - c) = 1.7`` with ``M`` the covariance of the
    3 vertices. Vectorised, and no OpenCV.

    Args:
        triangles: ``[T, 3, 2]`` vertices in pixels.
    Returns:
        centres ``[T, 2]`` (px), semi-axes ``[T, 2]`` (px, minor first; the code's ``axes * 0.5``) and the
        angle ``[T]`` of the minor axis in radians, in [0, pi).
    """
    centre = triangles.mean(dim=1)
    d = triangles - centre[:, None]
    cov = torch.einsum("tki,tkj->tij", d, d) / 3
    evals, evecs = torch.linalg.eigh(cov.double())  # ascending: column 0 is the minor axis
    semi = torch.sqrt(ELLIPSE_LEVEL * evals.clamp(min=0)).to(triangles.dtype)
    angle = torch.atan2(evecs[:, 1, 0], evecs[:, 0, 0]).remainder(math.pi).to(triangles.dtype)
    return centre, semi, angle


@dataclass
class Triangulation:
    """The triangles that become Gaussians, with their ellipses and neighbours.

    Attributes:
        triangles: ``[T, 3, 2]`` vertices in pixels.
        centers, semi_axes, angles: ``[T, 2]``, ``[T, 2]``, ``[T]`` from :func:`fit_ellipses`.
        neighbors: ``[T, 3]`` long, the triangle across each edge (itself on the hull).
        num_points: dithered points (without the border points).
    """

    triangles: torch.Tensor
    centers: torch.Tensor
    semi_axes: torch.Tensor
    angles: torch.Tensor
    neighbors: torch.Tensor
    num_points: int

    @property
    def count(self) -> int:
        return int(self.triangles.shape[0])

    def keep(self, mask: torch.Tensor) -> Triangulation:
        """The subset ``mask`` (``[T]`` bool); neighbours outside it point to the triangle itself."""
        remap = torch.full((self.count,), -1, dtype=torch.long)
        remap[mask] = torch.arange(int(mask.sum()))
        nb = remap[self.neighbors[mask]]
        own = torch.arange(int(mask.sum()))[:, None].expand_as(nb)
        return Triangulation(
            self.triangles[mask],
            self.centers[mask],
            self.semi_axes[mask],
            self.angles[mask],
            torch.where(nb < 0, own, nb),
            self.num_points,
        )


def triangulate(points: torch.Tensor, height: int, width: int) -> Triangulation:
    """Delaunay triangulation (scipy, as the code's CPU branch) of ``points`` plus border points.

    Args:
        points: ``[P, 2]`` (x, y) in pixels.
    Returns:
        a :class:`Triangulation` on the CPU (float32); degenerate (zero-area) triangles are dropped.
    """
    pts = add_boundary_points(points.cpu().numpy(), height, width)
    tri = Delaunay(pts)
    triangles = torch.from_numpy(pts[tri.simplices]).float()
    nb = torch.from_numpy(tri.neighbors).long()
    nb = torch.where(nb < 0, torch.arange(len(nb))[:, None].expand_as(nb), nb)
    centers, semi, angles = fit_ellipses(triangles)
    out = Triangulation(triangles, centers, semi, angles, nb, int(points.shape[0]))
    d = triangles[:, 1:] - triangles[:, :1]
    area = 0.5 * (d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] * d[:, 1, 0]).abs()
    return out if bool((area > 1e-6).all()) else out.keep(area > 1e-6)


def dither_points(ppm: torch.Tensor, k: int, mass: float | None = None) -> torch.Tensor:
    """Pool, optionally rescale to ``mass`` expected points, dither: ``[P, 2]`` pixel centres (CPU)."""
    pooled = pool_max(ppm.detach(), k)
    if mass is not None:
        pooled = scale_to_mass(pooled, mass)
    return cells_to_points(floyd_steinberg(pooled), k, *ppm.shape)


def propose(
    ppm: torch.Tensor, k: int, budget: int | None = None, mode: str = "free"
) -> tuple[Triangulation, dict]:
    """Points and triangles from a PPM ``[H, W]``, with the Gaussian budget applied as ``mode`` says.

    Modes: ``free`` (the network's own count, the code), ``cap`` (the network's count unless it exceeds
    ``budget``; then the pooled map is scaled down until it fits), ``target`` (scaled up or down to about
    ``budget``). A triangle is a Gaussian and a triangulation of P points has about 2P triangles, so
    each round rescales the map's mass by ``budget / count`` and dithers again (a few rounds; in ``cap``
    mode the smallest triangles are dropped if the last round is still over).

    Returns:
        the :class:`Triangulation` and ``{"network_count", "count", "points", "rounds"}``.
    """
    if mode not in ("free", "cap", "target"):
        raise ValueError(f"unknown budget mode {mode!r}; valid: free, cap, target")
    height, width = ppm.shape
    pooled_mass = float(pool_max(ppm.detach(), k).sum())
    tri = triangulate(dither_points(ppm, k), height, width)
    info = {"network_count": tri.count, "rounds": 1}
    if mode != "free" and budget is not None and budget > 0:
        mass, candidates = pooled_mass, [tri]
        for _ in range(4):
            if tri.count <= budget if mode == "cap" else abs(tri.count - budget) <= 0.02 * budget:
                break
            # a little under in cap mode, so that the next round lands below the budget
            mass *= budget / max(tri.count, 1) * (0.98 if mode == "cap" else 1.0)
            tri = triangulate(dither_points(ppm, k, mass), height, width)
            candidates.append(tri)
        info["rounds"] = len(candidates)
        if mode == "target":
            tri = min(candidates, key=lambda t: abs(t.count - budget))
        else:
            fitting = [t for t in candidates if t.count <= budget]
            tri = max(fitting, key=lambda t: t.count) if fitting else _largest(candidates[-1], budget)
    info.update(count=tri.count, points=tri.num_points)
    return tri, info


def _largest(tri: Triangulation, n: int) -> Triangulation:
    """The ``n`` largest triangles (a last resort of ``cap`` mode: small ones matter least)."""
    d = tri.triangles[:, 1:] - tri.triangles[:, :1]
    area = 0.5 * (d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] * d[:, 1, 0]).abs()
    keep = torch.zeros(tri.count, dtype=torch.bool)
    keep[torch.argsort(area, descending=True)[:n]] = True
    return tri.keep(keep)
