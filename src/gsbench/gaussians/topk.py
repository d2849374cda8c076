"""The top-K renderer's front door (Image-GS): Triton on CUDA, the tiled PyTorch rasterizer elsewhere.

:func:`render_topk` has the contract of :func:`gsbench.gaussians.render` (same footprint, cut-off and pixel
convention) but keeps, per pixel, only the ``k`` largest weights and (by default) normalises by their sum.
Backends follow ``options.backend`` as for the sum renderer: ``auto`` is the Triton kernel
(:mod:`kernels.rasterize_topk`) for CUDA tensors when triton is installed, else
:mod:`.raster_topk_torch`. The Triton kernel always normalises, so ``normalise=False`` uses the torch
rasterizer on every device, as does ``footprint="tile"``. ``legacy_tile_cap`` (a GaussianImage bug) does
not apply to top-K rendering.
"""

from __future__ import annotations

import torch

from .params import cov_radius, cov_to_conic
from .raster_topk_torch import rasterize_topk_torch
from .render import RenderOptions, _check_inputs, resolve_backend

DEFAULT_K = 10
DEFAULT_EPS = 1e-10  # the Triton kernel's default; Image-GS's own kernel adds 1e-4 (its method passes that)
MAX_K = 64  # the Triton kernel's limit


def render_topk(
    means: torch.Tensor,
    cov: torch.Tensor,
    colors: torch.Tensor,
    height: int,
    width: int,
    options: RenderOptions | None = None,
    k: int = DEFAULT_K,
    normalise: bool = True,
    eps: float = DEFAULT_EPS,
    footprint: str = "pixel",
) -> torch.Tensor:
    """Render 2D Gaussians keeping the ``k`` largest weights per pixel.

    Args:
        means: ``[N, 2]`` centres (x, y) in pixels; pixel (i, j) has its centre at (j, i).
        cov: ``[N, 3]`` packed covariances (a, b, c) in pixels^2.
        colors: ``[N, C]`` per-Gaussian colours (any C).
        height, width: output size in pixels.
        options: :class:`RenderOptions` (backend, tile sizes, cut-off, chunking).
        k: Gaussians kept per pixel, 1..64.
        normalise: ``sum w c / (sum w + eps)`` over the kept ones (Image-GS); else ``sum w c``.
        eps: added to the weight sum when normalising.
        footprint: ``pixel`` (the shared renderer's per-pixel footprint) or ``tile``: a Gaussian competes
            at every pixel of every ``options.tile_size`` tile its footprint overlaps, as the official
            Image-GS kernel (16x16 tiles); the image then depends on the tile size. Torch backend only.
    Returns:
        ``[C, H, W]`` image (not clamped), differentiable in means, cov and colors.
    """
    options = options or RenderOptions()
    _check_inputs(means, cov, colors, height, width)
    if not 1 <= int(k) <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    backend = resolve_backend(options.backend, means.device)
    dtype = torch.promote_types(torch.promote_types(means.dtype, cov.dtype), colors.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    means, cov, colors = means.to(dtype), cov.to(dtype), colors.to(dtype)
    if backend == "triton" and normalise and footprint == "pixel":
        return _render_triton(means, cov, colors, height, width, options, int(k), float(eps))
    conic, valid = cov_to_conic(cov)
    radius = cov_radius(cov, valid)
    return rasterize_topk_torch(
        means,
        conic,
        colors,
        radius.to(dtype),
        height,
        width,
        k=int(k),
        normalise=bool(normalise),
        eps=float(eps),
        tile_size=options.torch_tile_size if footprint == "pixel" else options.tile_size,
        cutoff=options.cutoff,
        footprint=footprint,
        chunk_pixels=options.chunk_pixels,
    )


def _render_triton(means, cov, colors, height, width, options: RenderOptions, k: int, eps: float):
    """Projection and binning as the sum backend (:func:`kernels.backend.render_triton`), then top-K."""
    from kernels.binning import bin_tiles_triton
    from kernels.projection import project_triton
    from kernels.rasterize_topk import rasterize_topk_triton

    tile = options.tile_size
    # The "covariance" parameterisation with a zero filter variance is exactly cov_to_conic(cov).
    params = torch.cat([cov, torch.zeros_like(cov[:, :1])], dim=1)
    proj = project_triton(params, means, "covariance", height, width, tile)
    bins = bin_tiles_triton(proj.rect, proj.count, height, width, tile)
    return rasterize_topk_triton(
        means, proj.conic, colors, proj.radius, bins, height, width, k=k, eps=eps, cutoff=options.cutoff
    )


__all__ = ["DEFAULT_EPS", "DEFAULT_K", "render_topk"]
