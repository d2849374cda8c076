"""The numba CPU backends (sum and top-K) against the dense float64 reference, forward and backward."""

from __future__ import annotations

import pytest
import torch

import helpers
from gsbench.gaussians import RenderOptions, cholesky_to_cov, render, render_topk, resolve_backend
from gsbench.gaussians.reference import render_reference, render_topk_reference

pytest.importorskip("numba")

F64 = torch.float64
NUMBA = RenderOptions(backend="numba")


def inputs(n, h, w, seed, channels=3, scale=3.0, margin=6.0, dtype=F64):
    """Means ``[n, 2]``, packed covariances ``[n, 3]`` and colours ``[n, channels]``."""
    means, chol, colors = helpers.random_gaussians(
        n, h, w, seed, channels=channels, scale=scale, margin=margin
    )
    return means.to(dtype), cholesky_to_cov(chol).to(dtype), colors.to(dtype)


def grads(fn, args, cot):
    x = [t.detach().clone().requires_grad_() for t in args]
    out = fn(*x)
    return out.detach(), torch.autograd.grad((out * cot.to(out.dtype)).sum(), x)


def cotangent(channels, h, w, seed=0):
    return torch.randn(channels, h, w, dtype=F64, generator=torch.Generator().manual_seed(seed))


def assert_matches(fn, ref, args, channels, h, w, rtol=1e-10, grad_rtol=1e-9):
    cot = cotangent(channels, h, w)
    out, g = grads(fn, args, cot)
    out_ref, g_ref = grads(ref, [t.double() for t in args], cot)
    torch.testing.assert_close(out.double(), out_ref, rtol=rtol, atol=rtol)
    for a, b in zip(g, g_ref, strict=True):
        scale = b.abs().max().clamp(min=1.0)  # float32 gradients: relative to the largest entry
        torch.testing.assert_close(a.double() / scale, b / scale, rtol=grad_rtol, atol=grad_rtol)


@pytest.mark.parametrize("cutoff,channels", [(True, 3), (False, 1), (True, 9)])
def test_sum_matches_reference_float64(cutoff, channels):
    h, w = 23, 37  # partial tiles on two borders; Gaussians straddle every border
    args = inputs(150, h, w, seed=channels, channels=channels)
    opts = RenderOptions(backend="numba", cutoff=cutoff)
    assert_matches(
        lambda m, c, k: render(m, c, k, h, w, opts),
        lambda m, c, k: render_reference(m, c, k, h, w, cutoff=cutoff), args, channels, h, w,
    )  # fmt: skip


def test_sum_float32_close_to_float64_reference():
    h, w = 30, 41
    args = inputs(200, h, w, seed=6, dtype=torch.float32)
    out = render(*args, h, w, NUMBA)
    assert out.dtype == torch.float32
    assert_matches(
        lambda m, c, k: render(m, c, k, h, w, NUMBA),
        lambda m, c, k: render_reference(m, c, k, h, w), args, 3, h, w, rtol=1e-5, grad_rtol=1e-4,
    )  # fmt: skip


def test_sum_more_than_256_per_tile_with_and_without_legacy_cap():
    h, w = 40, 50
    means, cov, colors = inputs(900, h, w, seed=4, scale=2.0, margin=0.0)
    ref = render_reference(means, cov, colors, h, w)
    torch.testing.assert_close(render(means, cov, colors, h, w, NUMBA), ref, rtol=1e-10, atol=1e-10)
    capped = RenderOptions(backend="numba", legacy_tile_cap=True)
    assert_matches(
        lambda m, c, k: render(m, c, k, h, w, capped),
        lambda m, c, k: render_reference(m, c, k, h, w, legacy_cap=256, tile_size=16),
        (means, cov, colors), 3, h, w,
    )  # fmt: skip
    assert (render(means, cov, colors, h, w, capped) - ref).abs().max() > 1e-3


def test_degenerate_huge_thin_and_offscreen_gaussians():
    h, w = 40, 48  # 3 x 3 tiles; most stay empty except where the huge and thin Gaussians reach
    means = torch.tensor(
        [[4.0, 4.0], [4.0, 4.0], [-50.0, 4.0], [4.0, 1e9], [20.0, 18.0], [30.3, 9.7], [10.2, 30.6],
         [44.5, 2.5], [25.0, 25.0], [float("nan"), 3.0]],
        dtype=F64,
    )  # fmt: skip
    cov = torch.tensor(
        [[1.0, 1.0, 1.0],  # singular
         [-1.0, 0.0, 1.0],  # not positive definite
         [1.0, 0.0, 1.0], [1.0, 0.0, 1.0],  # off screen
         [1e6, 2e5, 5e5],  # covers the image many times over
         [400.0, 399.0, 400.0],  # needle along the diagonal
         [0.01, 0.0, 30.0],  # a > 16: the per-pixel exp path
         [4.0, 3.999, 4.0],  # near singular
         [0.3, 0.1, 0.2], [1.0, 0.0, 1.0]],
        dtype=F64,
    )  # fmt: skip
    colors = torch.rand(10, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    live = slice(4, 9)
    for cutoff in (True, False):
        opts = RenderOptions(backend="numba", cutoff=cutoff)
        out = render(means, cov, colors, h, w, opts)
        assert torch.isfinite(out).all()
        ref = render_reference(means[live], cov[live], colors[live], h, w, cutoff=cutoff)
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
        assert_matches(
            lambda m, c, k, o=opts: render(m, c, k, h, w, o),
            lambda m, c, k, cut=cutoff: render_reference(m, c, k, h, w, cutoff=cut),
            (means[live], cov[live], colors[live]), 2, h, w,
        )  # fmt: skip


def test_zero_gaussians_empty_tiles_and_one_pixel():
    empty = torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0, 3)
    assert torch.count_nonzero(render(*empty, 4, 5, NUMBA)) == 0
    assert torch.count_nonzero(render_topk(*empty, 4, 5, NUMBA)) == 0
    m, c, k = inputs(3, 8, 8, seed=1, margin=0.0)
    big = render(m, c, k, 100, 90, NUMBA)  # Gaussians in the top-left corner, every other tile empty
    torch.testing.assert_close(big, render_reference(m, c, k, 100, 90), rtol=1e-10, atol=1e-10)
    m1 = torch.tensor([[0.2, -0.1]], dtype=F64)
    c1, k1 = torch.tensor([[0.5, 0.1, 0.7]], dtype=F64), torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    torch.testing.assert_close(render(m1, c1, k1, 1, 1, NUMBA), render_reference(m1, c1, k1, 1, 1))


@pytest.mark.parametrize("k", [1, 3, 10, 64])
@pytest.mark.parametrize("normalise", [True, False])
def test_topk_matches_reference_float64(k, normalise):
    h, w, channels = 21, 27, (3 if k != 3 else 9)
    args = inputs(90, h, w, seed=k, channels=channels, margin=5.0)
    assert_matches(
        lambda m, c, col: render_topk(m, c, col, h, w, NUMBA, k=k, normalise=normalise),
        lambda m, c, col: render_topk_reference(m, c, col, h, w, k=k, normalise=normalise),
        args, channels, h, w,
    )  # fmt: skip


def test_topk_float32_and_no_cutoff():
    h, w = 19, 24
    args = inputs(60, h, w, seed=5, channels=1, dtype=torch.float32)
    opts = RenderOptions(backend="numba", cutoff=False)
    assert_matches(
        lambda m, c, col: render_topk(m, c, col, h, w, opts, k=10),
        lambda m, c, col: render_topk_reference(m, c, col, h, w, k=10, cutoff=False),
        args, 1, h, w, rtol=1e-5, grad_rtol=1e-4,
    )  # fmt: skip


@pytest.mark.parametrize("cutoff", [True, False])
def test_topk_tile_footprint_matches_torch_backend(cutoff):
    h, w = 20, 27
    args = inputs(40, h, w, seed=7, margin=5.0)
    opts = {b: RenderOptions(backend=b, tile_size=8, cutoff=cutoff) for b in ("numba", "torch")}
    assert_matches(
        lambda m, c, col: render_topk(m, c, col, h, w, opts["numba"], k=5, eps=1e-4, footprint="tile"),
        lambda m, c, col: render_topk(m, c, col, h, w, opts["torch"], k=5, eps=1e-4, footprint="tile"),
        args, 3, h, w,
    )  # fmt: skip


def test_gradcheck_tiny():
    h, w = 5, 6
    args = tuple(t.requires_grad_() for t in inputs(4, h, w, seed=5, scale=1.0, margin=0.0))
    opts = RenderOptions(backend="numba", cutoff=False)
    assert torch.autograd.gradcheck(lambda m, c, k: render(m, c, k, h, w, opts), args, eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(
        lambda m, c, k: render_topk(m, c, k, h, w, opts, k=2), args, eps=1e-6, atol=1e-6
    )


def test_bit_identical_across_runs_and_thread_counts():
    h, w = 48, 64
    args = inputs(400, h, w, seed=9, dtype=torch.float32)
    cot = cotangent(3, h, w, seed=3)
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 2):
            torch.set_num_threads(n)
            for fn in (render, render_topk):
                runs.append(grads(lambda m, c, k, f=fn: f(m, c, k, h, w, NUMBA), args, cot))
    finally:
        torch.set_num_threads(threads)
    for i in range(2, len(runs)):
        a, b = runs[i % 2], runs[i]
        assert torch.equal(a[0], b[0])
        assert all(torch.equal(x, y) for x, y in zip(a[1], b[1], strict=True))


def test_auto_picks_numba_on_the_cpu():
    assert resolve_backend("auto", "cpu") == "numba"
    assert resolve_backend("auto", "cpu", "topk") == "numba"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_clamped_mse_matches_torch(dtype):
    import torch.nn.functional as F

    from gsbench.gaussians.fused_loss import clamped_mse

    gen = torch.Generator().manual_seed(2)
    raw = torch.rand(3, 31, 45, generator=gen, dtype=dtype) * 1.6 - 0.3
    raw[0, 0, :2] = torch.tensor([0.0, 1.0])  # the clamp's edges pass the gradient, as torch's
    target = torch.rand(3, 31, 45, generator=gen, dtype=dtype)
    a, b = raw.clone().requires_grad_(), raw.clone().requires_grad_()
    fused, plain = clamped_mse(a, target), F.mse_loss(b.clamp(0, 1), target)
    (3 * fused).backward()
    (3 * plain).backward()
    assert fused.dtype == dtype
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(a.grad, b.grad)
    assert torch.isnan(clamped_mse(torch.full((1, 2, 2), float("nan"), dtype=dtype), target[:1, :2, :2]))
