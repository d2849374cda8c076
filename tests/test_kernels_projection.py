"""Triton projection and tile binning against params.py / bin_gaussians (CPU, Triton interpreter).

conftest.py sets TRITON_INTERPRET=1 before the kernel modules are imported (triton chooses interpreter
or compiler when a kernel is decorated). With TRITON_INTERPRET=0 on a CUDA machine the same tests run the
compiled kernels.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from gsbench.gaussians import cholesky_to_cov, cov_radius, cov_to_conic, filtered_cov
from gsbench.gaussians.params import scale_rot_to_cov
from gsbench.gaussians.raster_torch import bin_gaussians
from gsbench.kernels.binning import bin_tiles_triton
from gsbench.kernels.projection import _project_fwd_kernel, project_triton
from helpers import triton_device

DEV = triton_device(_project_fwd_kernel)  # cpu under the interpreter (conftest.py), else cuda
F64 = torch.float64


def random_params(mode, n, seed, dtype=F64):
    """Params of ``mode``, the covariance they mean (torch reference) and the rows that are degenerate."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 4, generator=g, dtype=dtype)
    if mode == "cholesky":
        p = u[:, :3] * torch.tensor([3.0, 4.0, 3.0], dtype=dtype) + torch.tensor(
            [0.3, -2.0, 0.3], dtype=dtype
        )
        p[:3] = torch.tensor(
            [[0.0, 1.0, 1.0], [1.0, 5.0, 0.0], [2.0, 1.0, 1e-3]], dtype=dtype
        )  # a=0, det=0, thin
        cov, bad = cholesky_to_cov(p), [0, 1]
    elif mode == "scale_rot":
        p = u[:, :3] * torch.tensor([3.0, 3.0, 6.3], dtype=dtype) + torch.tensor(
            [0.2, 0.2, -3.1], dtype=dtype
        )
        p[:2] = torch.tensor([[0.0, 2.0, 0.5], [2.0, 1e-3, 1.0]], dtype=dtype)  # zero and needle scale
        cov, bad = scale_rot_to_cov(p[:, :2], p[:, 2]), [0]
    else:
        p = u * torch.tensor([6.0, 4.0, 6.0, 0.5], dtype=dtype) + torch.tensor(
            [0.0, -2.0, 0.0, 0.0], dtype=dtype
        )
        # indefinite; singular made valid by the filter; singular without filter; negative variance
        p[:4] = torch.tensor(
            [[1.0, 2.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.3], [4.0, 2.0, 1.0, 0.0], [-1.0, 0.0, 1.0, 0.5]],
            dtype=dtype,
        )
        cov, bad = filtered_cov(p[:, :3], p[:, 3]), [0, 2, 3]
    return p, cov, bad


def cov_of(mode, p):
    """The reference covariance of packed params ``p`` (differentiable)."""
    if mode == "cholesky":
        return cholesky_to_cov(p)
    if mode == "scale_rot":
        return scale_rot_to_cov(p[:, :2], p[:, 2])
    return filtered_cov(p[:, :3], p[:, 3])


def torch_projection(mode, p):
    """conic of the reference path, differentiable in ``p``."""
    return cov_to_conic(cov_of(mode, p))[0]


@pytest.mark.parametrize("mode", ["cholesky", "scale_rot", "covariance"])
def test_projection_forward_backward_float64(mode):
    n, h, w = 200, 20, 30
    p, cov, bad = random_params(mode, n, seed=1)
    means = torch.rand(n, 2, dtype=F64, generator=torch.Generator().manual_seed(2)) * 50 - 10
    pt = p.to(DEV).requires_grad_()
    proj = project_triton(pt, means.to(DEV), mode, h, w, tile_size=8)
    conic, valid = cov_to_conic(cov)
    # Same float64 formulas: conic to rounding; the radius is an exact integer (same operation order).
    torch.testing.assert_close(proj.conic.detach().cpu(), conic, rtol=1e-12, atol=0)
    assert torch.equal(proj.radius.cpu(), cov_radius(cov, valid))
    assert valid[:4].tolist() == [i not in bad for i in range(4)]  # the edge rows are what they claim
    cot = torch.randn(n, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    (g,) = torch.autograd.grad((proj.conic * cot.to(DEV)).sum(), [pt])
    pr = p.clone().requires_grad_()
    (gr,) = torch.autograd.grad((torch_projection(mode, pr) * cot).sum(), [pr])
    # Hand-derived chain rule vs autograd, both float64, different operation orders. Each path sums
    # terms as large as |cot| |conic|^2 |p|^2 (d conic / d cov ~ conic^2, d cov / d p ~ p and p^2), which
    # cancel in the needle-thin rows (conic ~ 1e6): ~10 roundings of u = 1.1e-16 on such terms bound
    # the absolute error, hence a per-row atol of 1e-15 times that scale (1e-13 on ordinary rows,
    # ~5e-3 on needles whose other entries are ~1e5). A wrong term would be off by O(1) of the scale.
    scale = (1 + conic.abs().amax(1, keepdim=True)) ** 2 * (1 + p.abs().amax(1, keepdim=True)) ** 2
    assert torch.all((g.cpu() - gr).abs() <= 1e-15 * scale * cot.abs().amax() + 1e-9 * gr.abs())
    assert torch.count_nonzero(g[~valid.to(DEV)]) == 0


@pytest.mark.parametrize("mode", ["cholesky", "scale_rot", "covariance"])
def test_projection_float32(mode):
    p, cov, _ = random_params(mode, 100, seed=4)
    p32 = p.float()
    means = torch.zeros(100, 2, device=DEV)
    proj = project_triton(p32.to(DEV), means, mode, 16, 16)
    conic, valid = cov_to_conic(cov)
    ok = valid & (cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2 > 1e-2)  # well-conditioned rows only
    # float32 inversion: a few ulps of the conic, amplified by the condition number (< 1e3 here).
    torch.testing.assert_close(proj.conic.cpu()[ok].double(), conic[ok], rtol=1e-4, atol=1e-6)
    # The radius uses IEEE sqrt in the same order as cov_radius, so float32 radii agree exactly.
    cov32 = cov_of(mode, p32)
    r32 = cov_radius(cov32, cov_to_conic(cov32)[1])
    assert torch.equal(proj.radius.cpu(), r32)


def pairs(gid, tile):
    return sorted(zip(gid.tolist(), tile.tolist(), strict=True))


@pytest.mark.parametrize("tile", [4, 8, 16])
def test_binning_matches_bin_gaussians(tile):
    h, w, n = 21, 35, 300
    g = torch.Generator().manual_seed(5)
    means = torch.rand(n, 2, generator=g, dtype=F64) * torch.tensor([w + 20.0, h + 20.0], dtype=F64) - 10
    means[:3] = torch.tensor([[1e9, 3.0], [float("nan"), 2.0], [-1e9, float("inf")]], dtype=F64)
    p, cov, _ = random_params("cholesky", n, seed=6)
    proj = project_triton(p.to(DEV), means.to(DEV), "cholesky", h, w, tile)
    bins = bin_tiles_triton(proj.rect, proj.count, h, w, tile)
    ref = bin_gaussians(means, cov_radius(cov, cov_to_conic(cov)[1]), h, w, tile)
    ref_tile = ref.tile_y * ref.tiles_x + ref.tile_x
    tiles = torch.repeat_interleave(
        torch.arange(bins.tiles_x * bins.tiles_y), bins.tile_start.diff().cpu().long()
    )
    assert pairs(bins.gids.cpu(), tiles) == pairs(ref.gid, ref_tile)
    # sorted by tile, then by Gaussian index inside a tile (the legacy cap relies on it)
    key = tiles * n + bins.gids.cpu().long()
    assert torch.all(key.diff() > 0)
    assert proj.count[:3].sum() == 0  # far away, nan and inf means are not binned


def test_binning_empty():
    rect, count = (
        torch.zeros(0, 4, dtype=torch.int32, device=DEV),
        torch.zeros(0, dtype=torch.int32, device=DEV),
    )
    bins = bin_tiles_triton(rect, count, 5, 7, 4)
    assert bins.gids.numel() == 0 and bins.tile_start.tolist() == [0] * 5
    proj = project_triton(torch.zeros(0, 3, device=DEV), torch.zeros(0, 2, device=DEV), "cholesky", 1, 1)
    assert proj.conic.shape == (0, 3) and proj.count.shape == (0,)


def test_projection_refuses_bad_inputs():
    with pytest.raises(ValueError, match=r"must be \[N, 4\]"):
        project_triton(torch.zeros(2, 3, device=DEV), torch.zeros(2, 2, device=DEV), "covariance", 4, 4)
    with pytest.raises(ValueError, match="unknown parameterisation"):
        project_triton(torch.zeros(2, 3, device=DEV), torch.zeros(2, 2, device=DEV), "nope", 4, 4)
    with pytest.raises(ValueError, match="float32"):
        project_triton(
            torch.zeros(2, 3, device=DEV), torch.zeros(2, 2, dtype=F64, device=DEV), "cholesky", 4, 4
        )
    with pytest.raises(ValueError, match="means must be"):
        project_triton(torch.zeros(2, 3, device=DEV), torch.zeros(3, 2, device=DEV), "cholesky", 4, 4)
