"""The ``"triton"`` backend of :func:`gsbench.gaussians.render`: projection, binning, rasterize-sum.

``gsbench.gaussians.render`` imports this module at its end. Registration only checks that triton is
installed (``importlib.util.find_spec``, no import): the kernel modules, and triton itself, are imported
on the first render. So importing gsbench stays fast, and ``TRITON_INTERPRET=1`` may be set at any time
before that first render (triton picks interpreter or compiler when a kernel module is imported).
On CPU tensors without the interpreter the backend raises a ValueError that says so; ``auto`` only
picks ``"triton"`` for CUDA tensors (:func:`gsbench.gaussians.render.resolve_backend`).
"""

from __future__ import annotations

import importlib.util

import torch

from gsbench.gaussians.render import BACKENDS, LEGACY_CAP, LEGACY_TILE, RenderOptions


def render_triton(means, cov, colors, height: int, width: int, options: RenderOptions) -> torch.Tensor:
    """Render ``[C, H, W]`` from ``means [N, 2]``, packed ``cov [N, 3]``, ``colors [N, C]`` with Triton.

    Honours ``options.tile_size`` (a power of two), ``cutoff`` and ``legacy_tile_cap`` (16x16 tiles,
    first 256 Gaussians of each). Differentiable in means, cov and colors.
    """
    from .binning import bin_tiles_triton
    from .projection import project_triton
    from .rasterize_sum import rasterize_sum_triton

    tile, cap = options.tile_size, None
    if options.legacy_tile_cap:
        tile, cap = LEGACY_TILE, LEGACY_CAP
    dtype = torch.promote_types(torch.promote_types(means.dtype, cov.dtype), colors.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32  # half inputs: the kernels accumulate in float32
    means, cov, colors = means.to(dtype), cov.to(dtype), colors.to(dtype)
    # The "covariance" parameterisation with a zero filter variance is exactly cov_to_conic(cov).
    params = torch.cat([cov, torch.zeros_like(cov[:, :1])], dim=1)
    proj = project_triton(params, means, "covariance", height, width, tile)
    bins = bin_tiles_triton(proj.rect, proj.count, height, width, tile)
    return rasterize_sum_triton(
        means, proj.conic, colors, proj.radius, bins, height, width, cutoff=options.cutoff, legacy_cap=cap
    )


if importlib.util.find_spec("triton") is not None and "triton" not in BACKENDS:
    BACKENDS.add("triton", render_triton)
