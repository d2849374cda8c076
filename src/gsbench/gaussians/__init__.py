"""The shared 2D Gaussian model: covariance parameterisations and the renderer front door."""

from . import backends as _backends  # noqa: F401  (fills the renderer table)
from .params import COVARIANCES, cholesky_to_cov, cov_radius, cov_to_conic, filtered_cov, scale_rot_to_cov
from .reference import render_reference, render_topk_reference
from .render import RENDERERS, RenderOptions, TopKOptions, render, render_topk, resolve_backend

__all__ = [
    "COVARIANCES",
    "RENDERERS",
    "RenderOptions",
    "TopKOptions",
    "cholesky_to_cov",
    "cov_radius",
    "cov_to_conic",
    "filtered_cov",
    "render",
    "render_reference",
    "render_topk",
    "render_topk_reference",
    "resolve_backend",
    "scale_rot_to_cov",
]
