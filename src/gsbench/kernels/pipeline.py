"""The one composition of the Triton kernels: projection, tile binning, then a rasterizer.

Every caller that renders with Triton (the renderer's backend table, the FPS benchmark, the kernel
tests) goes through :func:`render_triton`, so the pipeline is written once.
"""

from __future__ import annotations

import torch

from .binning import bin_tiles_triton
from .projection import project_triton
from .rasterize_sum import rasterize_sum_triton
from .rasterize_topk import DEFAULT_EPS, rasterize_topk_triton

MODES = ("sum", "topk")


def render_triton(
    params: torch.Tensor,
    means: torch.Tensor,
    colors: torch.Tensor,
    height: int,
    width: int,
    *,
    param_mode: str = "covariance",
    mode: str = "sum",
    tile_size: int = 16,
    cutoff: bool = True,
    legacy_cap: int | None = None,
    k: int = 10,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Render ``[C, H, W]`` from packed shape parameters, centres and colours.

    Args:
        params: ``[N, P]`` shape parameters in the layout of ``param_mode`` (see
            :func:`.projection.project_triton`: ``cholesky`` / ``scale_rot`` ``[N, 3]``, ``covariance``
            ``[N, 4]`` = packed covariance (a, b, c) + filter variance).
        means: ``[N, 2]`` centres (x, y) in pixels.
        colors: ``[N, C]`` any channel count.
        height, width: image size in pixels.
        param_mode: how ``params`` encode the covariance.
        mode: ``sum`` (accumulated sum) or ``topk`` (Image-GS: K largest weights, normalised).
        tile_size: tile edge (a power of two); legacy_cap: first ``legacy_cap`` Gaussians per tile only.
        cutoff: skip weights below 1/255. k, eps: top-K only.
    Returns:
        ``[C, H, W]`` image, differentiable in params, means and colors.
    """
    if mode not in MODES:
        raise ValueError(f"unknown rasterization mode {mode!r}; valid: {', '.join(MODES)}")
    proj = project_triton(params, means, param_mode, height, width, tile_size)
    bins = bin_tiles_triton(proj.rect, proj.count, height, width, tile_size)
    if mode == "topk":
        return rasterize_topk_triton(
            means, proj.conic, colors, proj.radius, bins, height, width,
            k=k, eps=eps, cutoff=cutoff, legacy_cap=legacy_cap,
        )  # fmt: skip
    return rasterize_sum_triton(
        means, proj.conic, colors, proj.radius, bins, height, width, cutoff=cutoff, legacy_cap=legacy_cap
    )


def render_cov_triton(
    means: torch.Tensor, cov: torch.Tensor, colors: torch.Tensor, height: int, width: int, **kw
) -> torch.Tensor:
    """:func:`render_triton` from packed covariances ``cov [N, 3]`` (a zero filter variance)."""
    params = torch.cat([cov, torch.zeros_like(cov[:, :1])], dim=1)
    return render_triton(params, means, colors, height, width, param_mode="covariance", **kw)


__all__ = ["MODES", "render_cov_triton", "render_triton"]
