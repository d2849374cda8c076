"""Covariance parameterisations of 2D Gaussians, all mapped to one packed form.

Every parameterisation returns the packed upper triangle ``(a, b, c)`` of the pixel-space covariance
``Sigma = [[a, b], [b, c]]`` with shape ``[N, 3]``; the renderer only ever sees that form.
"""

from __future__ import annotations

import torch

from ..registry import Registry

COVARIANCES: Registry = Registry("covariance parameterisation")


@COVARIANCES.register("cholesky")
def cholesky_to_cov(chol: torch.Tensor) -> torch.Tensor:
    """GaussianImage's Cholesky factor ``L = [[l1, 0], [l2, l3]]`` to ``Sigma = L L^T``.

    Args:
        chol: ``[N, 3]`` = (l1, l2, l3), in pixels.
    Returns:
        ``[N, 3]`` packed covariance (l1^2, l1 l2, l2^2 + l3^2); positive semi-definite by construction.
    """
    l1, l2, l3 = chol.unbind(-1)
    return torch.stack([l1 * l1, l1 * l2, l2 * l2 + l3 * l3], dim=-1)


class _LegacyCholeskyCov(torch.autograd.Function):
    """``Sigma = L L^T`` with the official GaussianImage projection backward.

    The forward is :func:`cholesky_to_cov`. The backward of the gsplat fork that GaussianImage and
    GaussianImage++ build (``backward2d.cu``, ``project_gaussians_2d_backward_kernel``) doubles the terms
    of the packed off-diagonal gradient ``G_b``: ``dl1 = 2 l1 G_a + 2 l2 G_b``, ``dl2 = 2 l1 G_b +
    2 l2 G_c``, ``dl3 = 2 l3 G_c``, where the exact chain rule through ``b = l1 l2`` gives ``l2 G_b`` and
    ``l1 G_b``. Reproduced so that the published training dynamics can be.
    """

    @staticmethod
    def forward(ctx, chol: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(chol)
        l1, l2, l3 = chol.unbind(-1)
        return torch.stack([l1 * l1, l1 * l2, l2 * l2 + l3 * l3], dim=-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (chol,) = ctx.saved_tensors
        l1, l2, l3 = chol.unbind(-1)
        ga, gb, gc = grad.unbind(-1)
        return torch.stack([2 * l1 * ga + 2 * l2 * gb, 2 * l1 * gb + 2 * l2 * gc, 2 * l3 * gc], dim=-1)


def cholesky_to_cov_legacy(chol: torch.Tensor) -> torch.Tensor:
    """:func:`cholesky_to_cov` whose gradient is the official kernel's (doubled off-diagonal terms).

    Args:
        chol: ``[N, 3]`` = (l1, l2, l3).
    Returns:
        ``[N, 3]`` packed covariance, identical to :func:`cholesky_to_cov`; only the backward differs.
    """
    return _LegacyCholeskyCov.apply(chol)


@COVARIANCES.register("scale_rot")
def scale_rot_to_cov(scale: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Scale-rotation form ``Sigma = R(theta) diag(sx^2, sy^2) R(theta)^T``.

    Args:
        scale: ``[N, 2]`` standard deviations along the two axes, in pixels.
        theta: ``[N]`` or ``[N, 1]`` rotation angles in radians.
    Returns:
        ``[N, 3]`` packed covariance.
    """
    theta = theta.reshape(-1)
    cos, sin = torch.cos(theta), torch.sin(theta)
    sx2, sy2 = scale[:, 0] ** 2, scale[:, 1] ** 2
    a = cos * cos * sx2 + sin * sin * sy2
    b = cos * sin * (sx2 - sy2)
    c = sin * sin * sx2 + cos * cos * sy2
    return torch.stack([a, b, c], dim=-1)


@COVARIANCES.register("covariance")
def filtered_cov(cov: torch.Tensor, filter_var: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Direct covariance plus an isotropic filter variance (GaussianImage++'s content-aware filter).

    Args:
        cov: ``[N, 3]`` raw (var_x, cov_xy, var_y); not necessarily positive definite.
        filter_var: ``[N]`` or scalar ``s_i`` added to both variances.
    Returns:
        ``[N, 3]`` packed covariance ``Sigma + s_i I``.
    """
    s = torch.as_tensor(filter_var, dtype=cov.dtype, device=cov.device).reshape(-1).expand(cov.shape[0])
    return cov + torch.stack([s, torch.zeros_like(s), s], dim=-1)


def cov_to_conic(cov: torch.Tensor, eps: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert packed covariances.

    Args:
        cov: ``[N, 3]`` packed covariance (a, b, c).
        eps: determinants at or below this mark a Gaussian as degenerate (not rendered).
    Returns:
        conic ``[N, 3]`` = packed ``Sigma^-1`` (zero for invalid Gaussians) and ``valid`` ``[N]`` bool:
        positive definite (a > 0 and det > eps).
    """
    a, b, c = cov.unbind(-1)
    det = a * c - b * b
    valid = (det > eps) & (a > 0)
    safe_det = torch.where(valid, det, torch.ones_like(det))
    conic = torch.stack([c / safe_det, -b / safe_det, a / safe_det], dim=-1)
    return torch.where(valid[:, None], conic, torch.zeros_like(conic)), valid


def cov_radius(cov: torch.Tensor, valid: torch.Tensor, sigmas: float = 3.0) -> torch.Tensor:
    """Footprint half-width ``ceil(sigmas * sqrt(lambda_max))`` in pixels, 0 for invalid Gaussians.

    Not differentiated: it only decides which pixels a Gaussian may touch (as in the official kernels).

    Args:
        cov: ``[N, 3]`` packed covariance.
        valid: ``[N]`` bool from :func:`cov_to_conic`.
    Returns:
        ``[N]`` float radii (integers stored as floats).
    """
    with torch.no_grad():
        a, b, c = cov.unbind(-1)
        mid = 0.5 * (a + c)
        lam_max = mid + torch.sqrt(torch.clamp(mid * mid - (a * c - b * b), min=0.0))
        radius = torch.ceil(sigmas * torch.sqrt(torch.clamp(lam_max, min=0.0)))
        return torch.where(valid, radius, torch.zeros_like(radius))
