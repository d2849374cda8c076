"""Triton rasterize-top-K-normalised (Image-GS) against its dense float64 reference (torch.topk).

CPU with the Triton interpreter (conftest.py sets TRITON_INTERPRET=1 before the kernels are imported).
The forward walks a tile's Gaussians one at a time, the interpreter's slowest pattern: sizes are small.
"""

from __future__ import annotations

from functools import partial

import pytest
import torch

pytest.importorskip("triton")

from gsbench.gaussians import cholesky_to_cov
from gsbench.gaussians.reference import dense_weights
from gsbench.gaussians.reference import render_topk_reference as rasterize_topk_reference
from gsbench.kernels.binning import bin_tiles_triton
from gsbench.kernels.pipeline import render_triton
from gsbench.kernels.projection import project_triton
from gsbench.kernels.rasterize_topk import _rasterize_topk_fwd_kernel, rasterize_topk_triton
from helpers import random_gaussians as _random_gaussians
from helpers import triton_device

DEV = triton_device(_rasterize_topk_fwd_kernel)  # cpu under the interpreter (conftest.py), else cuda
F64 = torch.float64
# top-K normalises, so colours stay in [0, 1); a slightly smaller border margin than the sum tests
random_gaussians = partial(_random_gaussians, margin=5.0, color_range=(0.0, 1.0))


def compare(inputs, h, w, seed, k, tile=16, cutoff=True, grad_atol=1e-9):
    """Forward and gradients (means, Cholesky, colours) against the dense reference."""
    cot = torch.randn(inputs[2].shape[1], h, w, dtype=F64, generator=torch.Generator().manual_seed(seed))
    a = [t.detach().to(DEV).requires_grad_() for t in inputs]
    out = render_triton(
        a[1], a[0], a[2], h, w, param_mode="cholesky", mode="topk", tile_size=tile, k=k, cutoff=cutoff
    )
    grads = torch.autograd.grad((out * cot.to(DEV).to(out.dtype)).sum(), a)
    b = [t.detach().double().requires_grad_() for t in inputs]
    ref = rasterize_topk_reference(b[0], cholesky_to_cov(b[1]), b[2], h, w, k=k, cutoff=cutoff)
    ref_grads = torch.autograd.grad((ref * cot).sum(), b)
    # float64 both sides; the normalisation divides by sums >= 1/255 (or eps): ~1e-13 relative.
    torch.testing.assert_close(out.detach().cpu().double(), ref.detach(), rtol=1e-10, atol=1e-10)
    for x, y in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(x.cpu().double(), y, rtol=1e-9, atol=grad_atol)
    return out


@pytest.mark.parametrize("k", [1, 3, 10])
@pytest.mark.parametrize("cutoff", [True, False])
def test_topk_matches_reference(k, cutoff):
    h, w = 20, 30
    compare(random_gaussians(60, h, w, seed=k + 20 * cutoff), h, w, seed=k, k=k, cutoff=cutoff)


@pytest.mark.parametrize("channels", [1, 9])
def test_topk_channels_and_small_tiles(channels):
    h, w = 13, 18
    compare(random_gaussians(50, h, w, seed=channels, channels=channels), h, w, seed=3, k=4, tile=8)


def test_topk_many_blocks_per_tile():
    h, w = 16, 16  # one tile, 70 Gaussians: the backward walks 9 batches of 8, most pixels keep 10
    out = compare(random_gaussians(70, h, w, seed=5, margin=0.0), h, w, seed=5, k=10)
    assert out.abs().sum() > 0


def test_topk_fewer_gaussians_than_k_and_degenerate():
    h, w = 9, 11
    means = torch.tensor([[4.0, 4.0], [5.0, 3.0], [4.0, 4.0], [10.8, -0.3]], dtype=F64)
    chol = torch.tensor([[2.0, 0.5, 1.0], [0.0, 1.0, 1.0], [2.0, 1.0, 1e-2], [1.5, -0.3, 1.0]], dtype=F64)
    colors = torch.rand(4, 3, dtype=F64, generator=torch.Generator().manual_seed(6))
    # A needle (conic ~1e4) is among them. Its d conic / d chol ~ conic^2 ~ 1e8 multiplies a d conic whose
    # terms cancel (sigma ~ 0.6 from terms ~1e4 along the needle): float64 rounding leaves ~1e8 * 1e-16
    # = 1e-8 absolute noise on gradients that are exactly 0, hence atol 1e-7 (rtol stays 1e-9).
    compare((means, chol, colors), h, w, seed=6, k=10, tile=4, grad_atol=1e-7)


def test_topk_zero_gaussians_and_one_pixel():
    empty = (torch.zeros(0, 2, dtype=F64), torch.zeros(0, 3, dtype=F64), torch.zeros(0, 3, dtype=F64))
    out = compare(empty, 4, 5, seed=7, k=10)
    assert torch.count_nonzero(out) == 0
    one = (
        torch.tensor([[0.3, 0.2]], dtype=F64),
        torch.tensor([[0.8, 0.1, 0.9]], dtype=F64),
        torch.ones(1, 2, dtype=F64),
    )
    compare(one, 1, 1, seed=8, k=10)


def test_topk_float32_close_to_float64():
    h, w = 12, 17
    means, chol, colors = random_gaussians(40, h, w, seed=9)
    proj = project_triton(chol.float().to(DEV), means.float().to(DEV), "cholesky", h, w)
    bins = bin_tiles_triton(proj.rect, proj.count, h, w)
    out = rasterize_topk_triton(
        means.float().to(DEV), proj.conic, colors.float().to(DEV), proj.radius, bins, h, w
    )
    ref = rasterize_topk_reference(means, cholesky_to_cov(chol), colors, h, w)
    # A weighted mean of colours in [0, 1] in float32: a few ulps of 1, unless a float32 weight rounds
    # across the 1/255 cut-off or swaps the K-th rank (probability ~1e-7 per pixel here).
    torch.testing.assert_close(out.cpu().double(), ref, rtol=1e-5, atol=1e-5)


def test_topk_refuses_bad_k():
    means, chol, colors = (t.to(DEV) for t in random_gaussians(3, 4, 4, seed=10))
    proj = project_triton(chol, means, "cholesky", 4, 4)
    bins = bin_tiles_triton(proj.rect, proj.count, 4, 4)
    with pytest.raises(ValueError, match="k must be"):
        rasterize_topk_triton(means, proj.conic, colors, proj.radius, bins, 4, 4, k=0)


def test_topk_large_k():
    h, w = 12, 12  # 60 wide Gaussians on one 16x16 tile: most pixels have more than 40 candidates
    inputs = random_gaussians(60, h, w, seed=11, scale=3.0, margin=0.0)
    compare(inputs, h, w, seed=11, k=40)


def test_topk_ties_keep_the_lower_index():
    """Duplicated Gaussians tie exactly; K cuts through the ties, so the kept set (and the gradient of
    each copy) depends on the tie rule: lower index first, in the forward and in the backward."""
    h, w = 6, 7
    means, chol, colors = random_gaussians(4, h, w, seed=12, scale=2.0, margin=0.0)
    means, chol = means.repeat(3, 1), chol.repeat(3, 1)  # Gaussian n, n + 4 and n + 8 coincide
    colors = torch.rand(12, 3, dtype=F64, generator=torch.Generator().manual_seed(12))
    cot = torch.randn(3, h, w, dtype=F64, generator=torch.Generator().manual_seed(13))
    for k in (2, 5):
        a = [t.detach().to(DEV).requires_grad_() for t in (means, chol, colors)]
        out = render_triton(a[1], a[0], a[2], h, w, param_mode="cholesky", mode="topk", tile_size=4, k=k)
        grads = torch.autograd.grad((out * cot.to(DEV)).sum(), a)
        b = [t.detach().requires_grad_() for t in (means, chol, colors)]
        wts = dense_weights(b[0], cholesky_to_cov(b[1]), h, w)  # [N, H, W]
        order = torch.sort(-wts.detach(), dim=0, stable=True).indices[:k]  # ties: lower index first
        top_w = torch.gather(wts, 0, order)
        ref = torch.einsum("khw,khwc->chw", top_w, b[2][order]) / (top_w.sum(0) + 1e-10)
        ref_grads = torch.autograd.grad((ref * cot).sum(), b)
        torch.testing.assert_close(out.detach().cpu(), ref.detach(), rtol=1e-10, atol=1e-10)
        for x, y in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(x.cpu(), y, rtol=1e-9, atol=1e-9)
