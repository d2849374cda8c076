"""The renderer's front door: :func:`render` (accumulated sum) and :func:`render_topk` (Image-GS).

Both dispatch through one table, :data:`RENDERERS`, keyed by ``(mode, backend)`` with mode ``sum`` or
``topk`` and backend ``torch``, ``numba`` or ``triton`` (:mod:`.backends` fills it, importing each
backend's code lazily, on its first render). ``auto`` takes the first backend of :data:`AUTO_ORDER` for
the tensors' device that is installed and supports the request: Triton on CUDA, numba on the CPU, torch
otherwise. Every backend has the contract written in :mod:`.raster_torch` (sum) and
:mod:`.raster_topk_torch` (top-K) and is tested against :mod:`.reference`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from ..registry import UnknownNameError

LEGACY_TILE = 16  # the official kernel's tile and its per-tile cap
LEGACY_CAP = 256
MODES = ("sum", "topk")
# auto: preference per device type; the first installed backend that supports the request wins
AUTO_ORDER: dict[str, tuple[str, ...]] = {"cuda": ("triton", "torch"), "cpu": ("numba", "torch")}
FALLBACK = "torch"  # implements every option on every device
MAX_K = 64  # top-K: the largest K any backend keeps per pixel (the Triton kernel's limit)


@dataclass(frozen=True)
class RenderOptions:
    """How to render; mirrors the ``render`` config group.

    Attributes:
        backend: ``auto`` (Triton on CUDA, numba on the CPU, when installed; else torch), ``torch``,
            ``numba`` or ``triton``.
        tile_size: tile edge in pixels (a work partition; results do not depend on it).
        cutoff: skip weights below 1/255 as the official kernels do.
        legacy_tile_cap: reproduce the official GaussianImage kernel's bug of rendering only the first
            256 Gaussians of each 16x16 tile (off by default: gsbench renders every Gaussian).
        torch_tile_size: the torch backend's own work tile (8 wastes fewer evaluations on small
            Gaussians than 16 on a CPU; results are identical).
        chunk_pixels: pixel evaluations per chunk in the torch backend (bounds memory).
        legacy_cholesky_grad: reproduce the official GaussianImage projection backward, which doubles the
            off-diagonal term of the Cholesky gradient (off by default: the exact gradient).
    """

    backend: str = "auto"
    tile_size: int = 16
    cutoff: bool = True
    legacy_tile_cap: bool = False
    torch_tile_size: int = 8
    chunk_pixels: int = 1 << 21
    legacy_cholesky_grad: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> RenderOptions:
        """Build from a config mapping, ignoring keys this class does not know (e.g. comments)."""
        if cfg is None:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(cfg).items() if k in known})


@dataclass(frozen=True)
class TopKOptions:
    """What top-K rendering keeps: ``k`` largest weights per pixel, normalised by their sum (+ ``eps``).

    ``footprint="tile"``: a Gaussian competes at every pixel of every tile its footprint overlaps, as the
    official Image-GS kernel (the image then depends on the tile size).
    """

    k: int = 10
    normalise: bool = True
    eps: float = 1e-10
    footprint: str = "pixel"


Rasterize = Callable[..., torch.Tensor]
"""``fn(means [N,2], cov [N,3], colors [N,C], height, width, options, topk | None) -> [C, H, W]``."""


@dataclass(frozen=True)
class Renderer:
    """One entry of :data:`RENDERERS`.

    Attributes:
        fn: the rasterizer (see :data:`Rasterize`); inputs arrive in one float dtype.
        available: whether the backend's package is installed (checked without importing it).
        supports: whether it implements these options (else ``auto`` skips it and a named backend
            falls back to :data:`FALLBACK`).
    """

    fn: Rasterize
    available: Callable[[], bool] = lambda: True
    supports: Callable[[RenderOptions, TopKOptions | None], bool] = lambda options, topk: True


RENDERERS: dict[tuple[str, str], Renderer] = {}


def register_renderer(mode: str, backend: str, **kw: Any) -> Callable[[Rasterize], Rasterize]:
    """Decorator: register ``fn`` as the ``(mode, backend)`` renderer (see :class:`Renderer`)."""
    if mode not in MODES:
        raise ValueError(f"unknown render mode {mode!r}; valid: {', '.join(MODES)}")

    def deco(fn: Rasterize) -> Rasterize:
        if (mode, backend) in RENDERERS:
            raise ValueError(f"renderer ({mode}, {backend}) is registered twice")
        RENDERERS[(mode, backend)] = Renderer(fn, **kw)
        return fn

    return deco


def backend_names() -> list[str]:
    """Every backend name a user may give, ``auto`` first."""
    return ["auto", *sorted({b for _, b in RENDERERS})]


def resolve_backend(
    name: str, device: torch.device | str, mode: str = "sum", topk: TopKOptions | None = None,
    options: RenderOptions | None = None,
) -> str:  # fmt: skip
    """The backend that ``name`` means for a ``mode`` render on ``device``.

    ``auto`` walks :data:`AUTO_ORDER`; a named backend that is not installed raises, one that does not
    implement the options (e.g. Triton top-K without normalisation) falls back to :data:`FALLBACK`.
    """
    device, options = torch.device(device), options or RenderOptions()
    if name == "auto":
        for cand in AUTO_ORDER.get(device.type, (FALLBACK,)):
            r = RENDERERS.get((mode, cand))
            if r is not None and r.available() and r.supports(options, topk):
                return cand
        return FALLBACK
    r = RENDERERS.get((mode, name))
    if r is None:
        raise UnknownNameError(f"unknown render backend {name!r}; valid names: {', '.join(backend_names())}")
    if not r.available():
        raise ValueError(f"render backend {name!r} is not installed here; use render.backend=auto or torch")
    return name if r.supports(options, topk) else FALLBACK


def _dispatch(mode, means, cov, colors, height, width, options, topk) -> torch.Tensor:
    options = options or RenderOptions()
    _check_inputs(means, cov, colors, height, width)
    backend = resolve_backend(options.backend, means.device, mode, topk, options)
    dtype = torch.promote_types(torch.promote_types(means.dtype, cov.dtype), colors.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32  # half inputs: every backend accumulates in float32 at least
    means, cov, colors = means.to(dtype), cov.to(dtype), colors.to(dtype)
    return RENDERERS[(mode, backend)].fn(means, cov, colors, height, width, options, topk)


def render(
    means: torch.Tensor,
    cov: torch.Tensor,
    colors: torch.Tensor,
    height: int,
    width: int,
    options: RenderOptions | None = None,
) -> torch.Tensor:
    """Render 2D Gaussians by accumulated summation.

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels; pixel (i, j) has its centre at (j, i).
        cov: ``[N, 3]`` packed covariances (a, b, c) of ``[[a, b], [b, c]]`` in pixels^2.
        colors: ``[N, C]`` per-Gaussian colours (any C).
        height, width: output size in pixels.
        options: :class:`RenderOptions` (defaults if None).
    Returns:
        ``[C, H, W]`` image (not clamped), differentiable in means, cov and colors.
    """
    return _dispatch("sum", means, cov, colors, height, width, options, None)


def render_topk(
    means: torch.Tensor,
    cov: torch.Tensor,
    colors: torch.Tensor,
    height: int,
    width: int,
    options: RenderOptions | None = None,
    k: int = 10,
    normalise: bool = True,
    eps: float = 1e-10,
    footprint: str = "pixel",
) -> torch.Tensor:
    """Render 2D Gaussians keeping the ``k`` largest weights per pixel (Image-GS).

    Same contract as :func:`render` (footprint, cut-off, pixel convention); see :class:`TopKOptions` for
    ``k`` (1..64), ``normalise``, ``eps`` and ``footprint`` (``pixel`` or ``tile``).
    Returns:
        ``[C, H, W]`` image (not clamped), differentiable in means, cov and colors.
    """
    if not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    if footprint not in ("pixel", "tile"):
        raise ValueError(f"footprint must be 'pixel' or 'tile', got {footprint!r}")
    topk = TopKOptions(int(k), bool(normalise), float(eps), footprint)
    return _dispatch("topk", means, cov, colors, height, width, options, topk)



def _check_inputs(means, cov, colors, height, width) -> None:
    n = means.shape[0]
    if means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(f"means must be [N, 2], got {tuple(means.shape)}")
    if cov.shape != (n, 3):
        raise ValueError(f"cov must be [N, 3] with N={n}, got {tuple(cov.shape)}")
    if colors.ndim != 2 or colors.shape[0] != n:
        raise ValueError(f"colors must be [N, C] with N={n}, got {tuple(colors.shape)}")
    if not (means.device == cov.device == colors.device):
        raise ValueError("means, cov and colors must be on the same device")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")


__all__ = [
    "LEGACY_CAP",
    "LEGACY_TILE",
    "RENDERERS",
    "RenderOptions",
    "TopKOptions",
    "backend_names",
    "register_renderer",
    "render",
    "render_topk",
    "resolve_backend",
]
