"""The entries of the renderer table (:data:`.render.RENDERERS`): torch, numba and Triton, sum and top-K.

Each backend's own code is imported inside its entry, on the first render: importing gsbench never
imports triton (whose interpreter-or-compiler choice is made when a kernel module is imported) and
stays cheap. Availability is checked with ``importlib.util.find_spec``, without importing.
"""

from __future__ import annotations

import importlib.util
from functools import cache

import torch

from .params import cov_radius, cov_to_conic
from .render import LEGACY_CAP, LEGACY_TILE, RenderOptions, TopKOptions, register_renderer


@cache
def installed(package: str) -> bool:
    """Whether ``package`` can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


def legacy_tiling(options: RenderOptions, tile: int) -> tuple[int, int | None]:
    """``(tile, cap)``: the official 16x16 tile with its 256 cap under ``legacy_tile_cap``, else no cap."""
    return (LEGACY_TILE, LEGACY_CAP) if options.legacy_tile_cap else (tile, None)


@register_renderer("sum", "torch")
def sum_torch(means, cov, colors, height, width, options: RenderOptions, topk=None) -> torch.Tensor:
    """Vectorised, chunked PyTorch rasterizer (:mod:`.raster_torch`); every option, every device."""
    from .raster_torch import rasterize_sum_torch

    conic, valid = cov_to_conic(cov)
    tile, cap = legacy_tiling(options, options.torch_tile_size)
    return rasterize_sum_torch(
        means, conic, colors, cov_radius(cov, valid).to(means.dtype), height, width,
        tile_size=tile, cutoff=options.cutoff, legacy_cap=cap, chunk_pixels=options.chunk_pixels,
    )  # fmt: skip


@register_renderer("topk", "torch")
def topk_torch(means, cov, colors, height, width, options: RenderOptions, topk: TopKOptions) -> torch.Tensor:
    """Tiled PyTorch top-K rasterizer (:mod:`.raster_topk_torch`); every option, every device."""
    from .raster_topk_torch import rasterize_topk_torch

    conic, valid = cov_to_conic(cov)
    tile = options.torch_tile_size if topk.footprint == "pixel" else options.tile_size
    return rasterize_topk_torch(
        means, conic, colors, cov_radius(cov, valid).to(means.dtype), height, width,
        k=topk.k, normalise=topk.normalise, eps=topk.eps, tile_size=tile, cutoff=options.cutoff,
        footprint=topk.footprint, chunk_pixels=options.chunk_pixels,
    )  # fmt: skip


def _triton_available() -> bool:
    return installed("triton")


@register_renderer("sum", "triton", available=_triton_available)
def sum_triton(means, cov, colors, height, width, options: RenderOptions, topk=None) -> torch.Tensor:
    """Triton projection + binning + rasterize-sum (:func:`gsbench.kernels.pipeline.render_cov_triton`)."""
    from ..kernels.pipeline import render_cov_triton

    tile, cap = legacy_tiling(options, options.tile_size)
    return render_cov_triton(
        means, cov, colors, height, width, mode="sum", tile_size=tile, cutoff=options.cutoff, legacy_cap=cap
    )


def _triton_topk_supports(options: RenderOptions, topk: TopKOptions | None) -> bool:
    # the kernel always normalises and uses the per-pixel footprint
    return topk is not None and topk.normalise and topk.footprint == "pixel"


@register_renderer("topk", "triton", available=_triton_available, supports=_triton_topk_supports)
def topk_triton(means, cov, colors, height, width, options: RenderOptions, topk: TopKOptions) -> torch.Tensor:
    """Triton projection + binning + rasterize-top-K (:func:`gsbench.kernels.pipeline.render_cov_triton`)."""
    from ..kernels.pipeline import render_cov_triton

    return render_cov_triton(
        means, cov, colors, height, width, mode="topk", tile_size=options.tile_size,
        cutoff=options.cutoff, k=topk.k, eps=topk.eps,
    )  # fmt: skip


def _numba_available() -> bool:
    return installed("numba")


@register_renderer("sum", "numba", available=_numba_available)
def sum_numba(means, cov, colors, height, width, options: RenderOptions, topk=None) -> torch.Tensor:
    """Compiled CPU rasterizer (:mod:`.raster_numba`); every option, CPU tensors."""
    from .raster_numba import rasterize_sum_numba

    conic, valid = cov_to_conic(cov)
    return rasterize_sum_numba(
        means, conic, colors, cov_radius(cov, valid).to(means.dtype), height, width, cutoff=options.cutoff,
        legacy_cap=LEGACY_CAP if options.legacy_tile_cap else None,
    )  # fmt: skip


@register_renderer("topk", "numba", available=_numba_available)
def topk_numba(means, cov, colors, height, width, options: RenderOptions, topk: TopKOptions) -> torch.Tensor:
    """Compiled CPU top-K rasterizer (:mod:`.raster_topk_numba`); every option, CPU tensors."""
    from .raster_topk_numba import rasterize_topk_numba

    conic, valid = cov_to_conic(cov)
    return rasterize_topk_numba(
        means, conic, colors, cov_radius(cov, valid).to(means.dtype), height, width, k=topk.k,
        normalise=topk.normalise, eps=topk.eps, cutoff=options.cutoff, footprint=topk.footprint,
        tile_size=options.tile_size,
    )  # fmt: skip
