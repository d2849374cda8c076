"""The renderer's front door: one :func:`render` for every method, backends chosen by name.

Backends share one contract (see :mod:`.raster_torch` for the exact semantics) and register in
:data:`BACKENDS`; the Triton kernels register themselves as ``"triton"`` when importable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch

from ..registry import Registry
from .params import cov_radius, cov_to_conic
from .raster_torch import rasterize_sum_torch

LEGACY_TILE = 16  # the official kernel's tile and its per-tile cap
LEGACY_CAP = 256

Backend = Callable[..., torch.Tensor]
BACKENDS: Registry[Backend] = Registry("render backend")


@dataclass(frozen=True)
class RenderOptions:
    """How to render; mirrors the ``render`` config group.

    Attributes:
        backend: ``auto`` (Triton on CUDA when available, else torch), ``torch`` or ``triton``.
        tile_size: tile edge in pixels (a work partition; results do not depend on it).
        cutoff: skip weights below 1/255 as the official kernels do.
        legacy_tile_cap: reproduce the official GaussianImage kernel's bug of rendering only the first
            256 Gaussians of each 16x16 tile (off by default: gsbench renders every Gaussian).
        torch_tile_size: the torch backend's own work tile (8 wastes fewer evaluations on small
            Gaussians than 16 on a CPU; results are identical).
        chunk_pixels: pixel evaluations per chunk in the torch backend (bounds memory).
    """

    backend: str = "auto"
    tile_size: int = 16
    cutoff: bool = True
    legacy_tile_cap: bool = False
    torch_tile_size: int = 8
    chunk_pixels: int = 1 << 21

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> RenderOptions:
        """Build from a config mapping, ignoring keys this class does not know (e.g. comments)."""
        if cfg is None:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(cfg).items() if k in known})


def resolve_backend(name: str, device: torch.device | str) -> str:
    """The backend that ``name`` means on ``device``; ``auto`` picks Triton on CUDA when it is registered."""
    device = torch.device(device)
    if name == "auto":
        return "triton" if device.type == "cuda" and "triton" in BACKENDS else "torch"
    BACKENDS.get(name)  # raises with the valid names
    return name


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
    options = options or RenderOptions()
    _check_inputs(means, cov, colors, height, width)
    backend = resolve_backend(options.backend, means.device)
    return BACKENDS.get(backend)(means, cov, colors, height, width, options)


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


@BACKENDS.register("torch")
def _render_torch(means, cov, colors, height, width, options: RenderOptions) -> torch.Tensor:
    conic, valid = cov_to_conic(cov)
    radius = cov_radius(cov, valid)
    tile = options.torch_tile_size
    cap = None
    if options.legacy_tile_cap:
        tile, cap = LEGACY_TILE, LEGACY_CAP
    dtype = torch.promote_types(torch.promote_types(means.dtype, cov.dtype), colors.dtype)
    return rasterize_sum_torch(
        means.to(dtype),
        conic.to(dtype),
        colors.to(dtype),
        radius.to(dtype),
        height,
        width,
        tile_size=tile,
        cutoff=options.cutoff,
        legacy_cap=cap,
        chunk_pixels=options.chunk_pixels,
    )


__all__ = ["BACKENDS", "RenderOptions", "render", "resolve_backend"]


# The Triton kernels (top-level package ``kernels``) register the "triton" backend when triton is
# installed; they import triton lazily, on the first render, so this stays cheap and never fails.
with contextlib.suppress(ImportError):
    import kernels.backend  # noqa: F401
