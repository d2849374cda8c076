"""The shared 2D Gaussian model: covariance parameterisations and the renderer front door."""

from .params import COVARIANCES, cholesky_to_cov, cov_radius, cov_to_conic, filtered_cov, scale_rot_to_cov
from .reference import render_reference
from .render import BACKENDS, RenderOptions, render, resolve_backend

__all__ = [
    "BACKENDS",
    "COVARIANCES",
    "RenderOptions",
    "cholesky_to_cov",
    "cov_radius",
    "cov_to_conic",
    "filtered_cov",
    "render",
    "render_reference",
    "resolve_backend",
    "scale_rot_to_cov",
]
