"""Projection: covariance parameters -> pixel-space conic, 3-sigma radius and tile rectangle.

Three parameterisations share one kernel, selected by the constexpr ``MODE`` (see
:mod:`gsbench.gaussians.params` for the PyTorch reference they are tested against):

* ``cholesky``   params ``[N, 3]`` = (l1, l2, l3), ``Sigma = L L^T`` (GaussianImage);
* ``scale_rot``  params ``[N, 3]`` = (sx, sy, theta) (GaussianImage RS, Image-GS, Instant GaussianImage);
* ``covariance`` params ``[N, 4]`` = (a, b, c, s): ``Sigma + s I`` (GaussianImage++'s filter variance).

Outputs follow ``cov_to_conic`` / ``cov_radius`` / ``bin_gaussians`` exactly: conic is zero and the
radius 0 for Gaussians that are not positive definite (``a > 0`` and ``det > 1e-12``); the tile rectangle
``(x0, y0, x1, y1)`` (inclusive, empty = ``(0, 0, -1, -1)``) covers the tiles the footprint overlaps
inside the image. Only the conic is differentiable (radius and tiles only choose pixels).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from . import Launch, check_inputs, kernel, run

MODES = {"cholesky": 0, "scale_rot": 1, "covariance": 2}
N_PARAMS = {0: 3, 1: 3, 2: 4}
DET_EPS = 1e-12  # cov_to_conic's default: determinants at or below it are degenerate
BLOCK = 256


@triton.jit
def _load_cov(p_ptr, offs, m, MODE: tl.constexpr, P: tl.constexpr):
    """Packed covariance (a, b, c), each ``[BLOCK]``, from the parameter rows ``offs``."""
    p0 = tl.load(p_ptr + offs * P + 0, mask=m, other=1.0)
    p1 = tl.load(p_ptr + offs * P + 1, mask=m, other=0.0)
    p2 = tl.load(p_ptr + offs * P + 2, mask=m, other=1.0)
    if MODE == 0:
        a, b, c = p0 * p0, p0 * p1, p1 * p1 + p2 * p2
    elif MODE == 1:
        cs, sn = tl.cos(p2), tl.sin(p2)
        sx2, sy2 = p0 * p0, p1 * p1
        a = cs * cs * sx2 + sn * sn * sy2
        b = cs * sn * (sx2 - sy2)
        c = sn * sn * sx2 + cs * cs * sy2
    else:
        s = tl.load(p_ptr + offs * P + 3, mask=m, other=0.0)
        a, b, c = p0 + s, p1, p2 + s
    return a, b, c


@kernel
def _project_fwd_kernel(
    p_ptr, means_ptr, conic_ptr, radius_ptr, rect_ptr, count_ptr, n, height, width, tile, eps,
    MODE: tl.constexpr, P: tl.constexpr, RN_SQRT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    # The tile size is a runtime argument: it only divides integers here, and a constexpr would multiply
    # the compiled variants by the number of tile sizes for nothing.
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a, b, c = _load_cov(p_ptr, offs, m, MODE, P)
    det = a * c - b * b
    valid = (det > eps) & (a > 0)
    sdet = tl.where(valid, det, 1.0)
    zero = tl.zeros_like(a)
    tl.store(conic_ptr + offs * 3 + 0, tl.where(valid, c / sdet, zero), mask=m)
    tl.store(conic_ptr + offs * 3 + 1, tl.where(valid, -b / sdet, zero), mask=m)
    tl.store(conic_ptr + offs * 3 + 2, tl.where(valid, a / sdet, zero), mask=m)
    # Same operation order as cov_radius, and IEEE sqrt (tl.sqrt is approximate in float32 on GPUs):
    # the ceil() must land on the same integer as the reference.
    mid = 0.5 * (a + c)
    disc = tl.maximum(mid * mid - (a * c - b * b), 0.0)
    if RN_SQRT:
        lam = mid + tl.sqrt_rn(disc)
        r = tl.ceil(3.0 * tl.sqrt_rn(tl.maximum(lam, 0.0)))
    else:
        lam = mid + tl.sqrt(disc)
        r = tl.ceil(3.0 * tl.sqrt(tl.maximum(lam, 0.0)))
    r = tl.where(valid, r, zero)
    tl.store(radius_ptr + offs, r, mask=m)
    # Tile rectangle, as bin_gaussians: footprint clipped to the pixels 0..W-1, 0..H-1.
    mx = tl.load(means_ptr + offs * 2 + 0, mask=m, other=0.0)
    my = tl.load(means_ptr + offs * 2 + 1, mask=m, other=0.0)
    finite = (tl.abs(mx) < float("inf")) & (tl.abs(my) < float("inf"))  # false for nan too
    inside = (r > 0) & (mx + r >= 0) & (mx - r <= width - 1) & (my + r >= 0) & (my - r <= height - 1)
    inside = inside & finite & m
    # where() before the casts: a far-away mean would overflow int32.
    x0 = tl.where(inside, tl.maximum(tl.ceil(mx - r), 0.0), zero).to(tl.int32) // tile
    x1 = tl.where(inside, tl.minimum(tl.floor(mx + r), width - 1.0), zero).to(tl.int32) // tile
    y0 = tl.where(inside, tl.maximum(tl.ceil(my - r), 0.0), zero).to(tl.int32) // tile
    y1 = tl.where(inside, tl.minimum(tl.floor(my + r), height - 1.0), zero).to(tl.int32) // tile
    x1 = tl.where(inside, x1, -1)
    y1 = tl.where(inside, y1, -1)
    tl.store(rect_ptr + offs * 4 + 0, x0, mask=m)
    tl.store(rect_ptr + offs * 4 + 1, y0, mask=m)
    tl.store(rect_ptr + offs * 4 + 2, x1, mask=m)
    tl.store(rect_ptr + offs * 4 + 3, y1, mask=m)
    tl.store(count_ptr + offs, (x1 - x0 + 1) * (y1 - y0 + 1), mask=m)


@kernel
def _project_bwd_kernel(
    p_ptr, g_conic_ptr, g_p_ptr, n, eps, MODE: tl.constexpr, P: tl.constexpr, BLOCK: tl.constexpr
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    a, b, c = _load_cov(p_ptr, offs, m, MODE, P)
    det = a * c - b * b
    valid = (det > eps) & (a > 0) & m
    sdet = tl.where(valid, det, 1.0)
    A, B, C = c / sdet, -b / sdet, a / sdet  # the conic
    gA = tl.where(valid, tl.load(g_conic_ptr + offs * 3 + 0, mask=m, other=0.0), 0.0)
    gB = tl.where(valid, tl.load(g_conic_ptr + offs * 3 + 1, mask=m, other=0.0), 0.0)
    gC = tl.where(valid, tl.load(g_conic_ptr + offs * 3 + 2, mask=m, other=0.0), 0.0)
    # d(Sigma^-1) for the packed (a, b, c) treated as independent, as autograd sees cov_to_conic:
    # dA/d(a,b,c) = -(A^2, 2AB, B^2), dB/d(a,b,c) = -(AB, AC + B^2, BC), dC/d(a,b,c) = -(B^2, 2BC, C^2).
    ga = -(gA * A * A + gB * A * B + gC * B * B)
    gb = -(2.0 * gA * A * B + gB * (A * C + B * B) + 2.0 * gC * B * C)
    gc = -(gA * B * B + gB * B * C + gC * C * C)
    p0 = tl.load(p_ptr + offs * P + 0, mask=m, other=0.0)
    p1 = tl.load(p_ptr + offs * P + 1, mask=m, other=0.0)
    p2 = tl.load(p_ptr + offs * P + 2, mask=m, other=0.0)
    if MODE == 0:  # a = l1^2, b = l1 l2, c = l2^2 + l3^2
        g0 = 2.0 * p0 * ga + p1 * gb
        g1 = p0 * gb + 2.0 * p1 * gc
        g2 = 2.0 * p2 * gc
    elif MODE == 1:  # da/dtheta = -2b, dc/dtheta = 2b, db/dtheta = cos(2 theta) (sx^2 - sy^2)
        cs, sn = tl.cos(p2), tl.sin(p2)
        g0 = 2.0 * p0 * (cs * cs * ga + cs * sn * gb + sn * sn * gc)
        g1 = 2.0 * p1 * (sn * sn * ga - cs * sn * gb + cs * cs * gc)
        g2 = 2.0 * b * (gc - ga) + (cs * cs - sn * sn) * (p0 * p0 - p1 * p1) * gb
    else:  # a = a0 + s, c = c0 + s
        g0, g1, g2 = ga, gb, gc
        tl.store(g_p_ptr + offs * P + 3, ga + gc, mask=m)
    tl.store(g_p_ptr + offs * P + 0, g0, mask=m)
    tl.store(g_p_ptr + offs * P + 1, g1, mask=m)
    tl.store(g_p_ptr + offs * P + 2, g2, mask=m)


def plan_project_fwd(params, means, conic, radius, rect, count, mode: int, height, width, tile) -> Launch:
    """The forward launch for ``params [N, P]`` of parameterisation ``mode`` (see :data:`MODES`)."""
    n, p = params.shape
    return Launch(
        _project_fwd_kernel, (triton.cdiv(n, BLOCK),),
        dict(p_ptr=params, means_ptr=means, conic_ptr=conic, radius_ptr=radius, rect_ptr=rect,
             count_ptr=count, n=n, height=height, width=width, tile=tile, eps=DET_EPS),
        dict(MODE=mode, P=p, RN_SQRT=params.dtype == torch.float32, BLOCK=BLOCK),
    )


def plan_project_bwd(params, g_conic, g_params, mode: int) -> Launch:
    """The backward launch: ``d params [N, P]`` from ``d conic [N, 3]``."""
    n, p = params.shape
    return Launch(
        _project_bwd_kernel, (triton.cdiv(n, BLOCK),),
        dict(p_ptr=params, g_conic_ptr=g_conic, g_p_ptr=g_params, n=n, eps=DET_EPS),
        dict(MODE=mode, P=p, BLOCK=BLOCK),
    )


def launch_plans(space) -> list[Launch]:
    """Every launch of this module over ``space`` (an :class:`.aot.OptionSpace`), from placeholders."""
    from . import placeholder as ph

    plans = []
    for dt in space.dtypes:
        for name in space.param_modes:
            mode = MODES[name]
            p, i32 = ph(dt).new_empty(1, N_PARAMS[mode]), torch.int32
            plans.append(plan_project_fwd(p, ph(dt), ph(dt), ph(dt), ph(i32), ph(i32), mode, 64, 64, 16))
            plans.append(plan_project_bwd(p, ph(dt), ph(dt), mode))
    return plans


class Projection(NamedTuple):
    """conic ``[N, 3]`` (differentiable), radius ``[N]``, rect ``[N, 4]`` int32, count ``[N]`` int32."""

    conic: torch.Tensor
    radius: torch.Tensor
    rect: torch.Tensor
    count: torch.Tensor


class ProjectTriton(torch.autograd.Function):
    """Packed params ``[N, P]`` -> :class:`Projection`; backward gives ``d params`` from ``d conic``."""

    @staticmethod
    def forward(ctx, params, means, mode, height, width, tile_size):
        n = params.shape[0]
        conic = torch.empty(n, 3, dtype=params.dtype, device=params.device)
        radius = torch.empty(n, dtype=params.dtype, device=params.device)
        rect = torch.empty(n, 4, dtype=torch.int32, device=params.device)
        count = torch.empty(n, dtype=torch.int32, device=params.device)
        if n > 0:
            run(plan_project_fwd(params, means, conic, radius, rect, count, mode, height, width, tile_size))
        ctx.save_for_backward(params)
        ctx.mode = mode
        ctx.mark_non_differentiable(radius, rect, count)
        return conic, radius, rect, count

    @staticmethod
    def backward(ctx, g_conic, *_):
        (params,) = ctx.saved_tensors
        n = params.shape[0]
        g_params = torch.zeros_like(params)
        if n > 0 and g_conic is not None:
            run(plan_project_bwd(params, g_conic.contiguous(), g_params, ctx.mode))
        return g_params, None, None, None, None, None


def project_triton(
    params: torch.Tensor, means: torch.Tensor, mode: str, height: int, width: int, tile_size: int = 16
) -> Projection:
    """Project packed parameters (see the module docstring for the layout of each ``mode``).

    Args:
        params: ``[N, 3]`` (cholesky, scale_rot) or ``[N, 4]`` (covariance + filter variance).
        means: ``[N, 2]`` centres (x, y) in pixels (only used for the tile rectangle; not differentiated).
        mode: ``cholesky``, ``scale_rot`` or ``covariance``.
        height, width: image size in pixels; tile_size: tile edge in pixels.
    """
    if mode not in MODES:
        raise ValueError(f"unknown parameterisation {mode!r}; valid: {', '.join(MODES)}")
    p = N_PARAMS[MODES[mode]]
    if params.ndim != 2 or params.shape[1] != p:
        raise ValueError(f"{mode} params must be [N, {p}], got {tuple(params.shape)}")
    if means.shape != (params.shape[0], 2):
        raise ValueError(f"means must be [N, 2] with N={params.shape[0]}, got {tuple(means.shape)}")
    check_inputs(_project_fwd_kernel, params=params, means=means)
    return Projection(
        *ProjectTriton.apply(
            params.contiguous(), means.detach().contiguous(), MODES[mode], height, width, tile_size
        )
    )


def project_cholesky_triton(chol, means, height, width, tile_size=16) -> Projection:
    """GaussianImage: ``chol [N, 3]`` = (l1, l2, l3)."""
    return project_triton(chol, means, "cholesky", height, width, tile_size)


def project_scale_rot_triton(scale, theta, means, height, width, tile_size=16) -> Projection:
    """Scale-rotation: ``scale [N, 2]`` standard deviations, ``theta [N]`` or ``[N, 1]`` radians."""
    return project_triton(torch.cat([scale, theta.reshape(-1, 1)], 1), means, "scale_rot", height, width,
                          tile_size)  # fmt: skip


def project_covariance_triton(cov, filter_var, means, height, width, tile_size=16) -> Projection:
    """GaussianImage++: raw ``cov [N, 3]`` plus ``filter_var [N]`` (or a scalar) on both variances."""
    s = torch.as_tensor(filter_var, dtype=cov.dtype, device=cov.device).reshape(-1, 1).expand(len(cov), 1)
    return project_triton(torch.cat([cov, s], 1), means, "covariance", height, width, tile_size)
