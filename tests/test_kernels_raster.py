"""Triton rasterize-sum and the "triton" render backend against the float64 dense reference.

CPU with the Triton interpreter (conftest.py sets TRITON_INTERPRET=1 before the kernel modules are
imported; with TRITON_INTERPRET=0 on a CUDA machine the same tests run the compiled kernels).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from gsbench.gaussians import RenderOptions, cholesky_to_cov, render, render_reference
from gsbench.kernels.binning import bin_tiles_triton
from gsbench.kernels.pipeline import render_triton
from gsbench.kernels.projection import project_triton
from gsbench.kernels.rasterize_sum import _rasterize_sum_fwd_kernel, rasterize_sum_triton
from helpers import random_gaussians, triton_device

DEV = triton_device(_rasterize_sum_fwd_kernel)  # cpu under the interpreter (conftest.py), else cuda
F64 = torch.float64


def triton_sum(means, chol, colors, h, w, tile=16, cutoff=True, cap=None):
    return render_triton(
        chol, means, colors, h, w, param_mode="cholesky", tile_size=tile, cutoff=cutoff, legacy_cap=cap
    )


def reference_sum(means, chol, colors, h, w, tile=16, cutoff=True, cap=None):
    return render_reference(
        means, cholesky_to_cov(chol), colors, h, w, cutoff=cutoff, legacy_cap=cap, tile_size=tile
    )


def compare(inputs, h, w, seed, rtol=1e-10, grad_rtol=1e-9, **kw):
    """Forward and gradients (means, Cholesky, colours) of the Triton path against the reference."""
    cot = torch.randn(
        inputs[2].shape[1], h, w, dtype=inputs[0].dtype, generator=torch.Generator().manual_seed(seed)
    )
    a = [t.detach().to(DEV).requires_grad_() for t in inputs]
    out = triton_sum(*a, h, w, **kw)
    grads = torch.autograd.grad((out * cot.to(DEV)).sum(), a)
    b = [t.detach().double().requires_grad_() for t in inputs]
    ref = reference_sum(*b, h, w, **kw)
    ref_grads = torch.autograd.grad((ref * cot.double()).sum(), b)
    torch.testing.assert_close(out.detach().cpu().double(), ref.detach(), rtol=rtol, atol=rtol)
    for x, y in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(x.cpu().double(), y, rtol=grad_rtol, atol=grad_rtol)
    return out


@pytest.mark.parametrize("channels", [1, 3, 9])
@pytest.mark.parametrize("cutoff", [True, False])
def test_sum_matches_reference(channels, cutoff):
    h, w = 20, 30  # partial tiles on two borders; margin 6 puts Gaussians across the image border
    inputs = random_gaussians(150, h, w, seed=channels + 10 * cutoff, channels=channels)
    # Same float64 arithmetic as the reference in another summation order: ~1e-13 relative, so 1e-10
    # (forward) and 1e-9 (gradients, sums of more terms) catch any semantic difference.
    compare(inputs, h, w, seed=1, tile=8, cutoff=cutoff)


def test_sum_many_blocks_per_tile_and_legacy_cap():
    h, w = 16, 16  # one tile, 300 Gaussians: many batches, and more than the legacy cap
    inputs = random_gaussians(300, h, w, seed=2, scale=2.0, margin=0.0)
    full = compare(inputs, h, w, seed=2)
    capped = compare(inputs, h, w, seed=3, cap=256)
    assert (full - capped).abs().max() > 1e-3  # the cap really drops Gaussians 257..300


def test_sum_legacy_cap_on_several_tiles():
    h, w = 20, 36  # 2 x 3 tiles of 16: the cap is per tile, by Gaussian index
    compare(random_gaussians(300, h, w, seed=4, scale=6.0), h, w, seed=4, cap=40)


def test_sum_degenerate_near_singular_offscreen():
    h, w = 12, 13
    means = torch.tensor(
        [[5.5, 6.0], [3.0, 3.0], [4.0, 4.0], [-50.0, 4.0], [6.0, 1e9], [12.9, -0.4]], dtype=F64
    )
    chol = torch.tensor(
        [
            [2.0, 1.0, 1e-3],
            [3.0, 0.0, 1e-2],
            [0.0, 1.0, 1.0],
            [1.0, 0.0, 1.0],
            [1.0, 0.0, 1.0],
            [1.5, 0.3, 0.8],
        ],
        dtype=F64,
    )  # needle, thin, degenerate (a = 0), off-screen, far away, straddling the corner
    colors = torch.rand(6, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    # The needles' conic entries are ~1e6: their gradients carry ~1e6 x float64 rounding, so 1e-8.
    out = compare((means, chol, colors), h, w, seed=5, tile=4, grad_rtol=1e-8)
    assert out.abs().sum() > 0


def test_sum_zero_gaussians_and_one_pixel():
    empty = [torch.zeros(0, k, dtype=F64, device=DEV, requires_grad=True) for k in (2, 3, 3)]
    out = triton_sum(*empty, 4, 5)
    assert out.shape == (3, 4, 5) and torch.count_nonzero(out) == 0
    assert all(g.shape == t.shape for g, t in zip(torch.autograd.grad(out.sum(), empty), empty, strict=True))
    inputs = (
        torch.tensor([[0.2, -0.1]], dtype=F64),
        torch.tensor([[0.7, 0.1, 0.8]], dtype=F64),
        torch.ones(1, 2),
    )
    compare((inputs[0], inputs[1], inputs[2].double()), 1, 1, seed=6)


def test_sum_float32_close_to_float64():
    h, w = 20, 30
    means, chol, colors = random_gaussians(200, h, w, seed=7, scale=2.0)
    out = triton_sum(means.float().to(DEV), chol.float().to(DEV), colors.float().to(DEV), h, w)
    ref = reference_sum(means, chol, colors, h, w)
    # float32 exp and sums of ~50 terms of size <= 1.5: a few ulps of the pixel values (as test_render).
    torch.testing.assert_close(out.cpu().double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("legacy", [False, True])
def test_render_backend_triton_matches_torch(legacy):
    h, w = 18, 21
    means, chol, colors = random_gaussians(120, h, w, seed=8)
    cov = cholesky_to_cov(chol)
    outs = {}
    for backend in ("torch", "triton"):
        opts = RenderOptions(backend=backend, tile_size=8, legacy_tile_cap=legacy)
        m, c, k = (
            t.detach().to(DEV if backend == "triton" else "cpu").requires_grad_()
            for t in (means, cov, colors)
        )
        out = render(m, c, k, h, w, opts)
        outs[backend] = (
            out.detach().cpu(),
            *(g.cpu() for g in torch.autograd.grad(out.square().sum(), [m, c, k])),
        )
    for x, y in zip(outs["triton"], outs["torch"], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9)  # both float64, different summation order


def test_bad_inputs_are_refused():
    means, chol, colors = (t.to(DEV) for t in random_gaussians(5, 8, 8, seed=9))
    proj = project_triton(chol, means, "cholesky", 8, 8, 4)
    bins = bin_tiles_triton(proj.rect, proj.count, 8, 8, 4)
    with pytest.raises(ValueError, match="float32"):
        rasterize_sum_triton(means, proj.conic, colors.float(), proj.radius, bins, 8, 8)
    with pytest.raises(ValueError, match="colors"):
        rasterize_sum_triton(means, proj.conic, colors[:3], proj.radius, bins, 8, 8)
    with pytest.raises(ValueError, match="another image size"):
        rasterize_sum_triton(means, proj.conic, colors, proj.radius, bins, 16, 8)
    with pytest.raises(ValueError, match="power of two"):
        render(means, cholesky_to_cov(chol), colors, 8, 8, RenderOptions(backend="triton", tile_size=12))
