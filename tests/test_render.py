"""The torch renderer against the dense float64 reference: forward, backward, edge cases, legacy cap."""

from __future__ import annotations

import pytest
import torch

import helpers
from gsbench.gaussians import (
    RenderOptions,
    cholesky_to_cov,
    cov_to_conic,
    render,
    render_reference,
    scale_rot_to_cov,
)
from gsbench.gaussians.raster_torch import bin_gaussians

F64 = torch.float64


def random_gaussians(n, h, w, seed, scale=1.0, margin=0.0):
    """Means, packed covariances and colours (see :func:`helpers.random_gaussians`)."""
    means, chol, colors = helpers.random_gaussians(n, h, w, seed, scale=scale, margin=margin)
    return means, cholesky_to_cov(chol), colors


def grads(fn, means, cov, colors, cot):
    m, c, k = (t.detach().clone().requires_grad_() for t in (means, cov, colors))
    out = fn(m, c, k)
    return out, torch.autograd.grad((out * cot).sum(), [m, c, k])


@pytest.mark.parametrize("cutoff", [True, False])
@pytest.mark.parametrize("tile", [4, 8, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_forward_backward_match_reference(cutoff, tile, seed):
    h, w = 23, 37  # not multiples of any tile: partial tiles on two borders
    means, cov, colors = random_gaussians(150, h, w, seed, scale=3.0, margin=6.0)
    opts = RenderOptions(backend="torch", torch_tile_size=tile, cutoff=cutoff, chunk_pixels=4096)
    cot = torch.randn(3, h, w, dtype=F64, generator=torch.Generator().manual_seed(seed + 7))
    out, g = grads(lambda m, c, k: render(m, c, k, h, w, opts), means, cov, colors, cot)
    ref, gr = grads(lambda m, c, k: render_reference(m, c, k, h, w, cutoff=cutoff), means, cov, colors, cot)
    # Same float64 arithmetic in a different summation order: agreement to ~1e-12 relative.
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g, gr, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_more_than_256_gaussians_per_tile_all_rendered():
    h, w = 16, 16  # one 16x16 tile holding 600 Gaussians
    means, cov, colors = random_gaussians(600, h, w, seed=3)
    ref = render_reference(means, cov, colors, h, w)
    out = render(means, cov, colors, h, w, RenderOptions(backend="torch"))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    capped = render(means, cov, colors, h, w, RenderOptions(backend="torch", legacy_tile_cap=True))
    assert (capped - ref).abs().max() > 1e-3  # the cap really drops Gaussians 257..600
    only_first = render_reference(means[:256], cov[:256], colors[:256], h, w)
    torch.testing.assert_close(capped, only_first, rtol=1e-10, atol=1e-10)


def test_legacy_cap_matches_reference_on_several_tiles():
    h, w = 40, 50
    means, cov, colors = random_gaussians(900, h, w, seed=4, scale=2.0)
    out = render(means, cov, colors, h, w, RenderOptions(backend="torch", legacy_tile_cap=True))
    ref = render_reference(means, cov, colors, h, w, legacy_cap=256, tile_size=16)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_gradcheck_tiny():
    h, w = 5, 6
    means, cov, colors = random_gaussians(4, h, w, seed=5, scale=1.0)
    opts = RenderOptions(backend="torch", cutoff=False)
    inputs = tuple(t.clone().requires_grad_() for t in (means, cov, colors))
    assert torch.autograd.gradcheck(lambda m, c, k: render(m, c, k, h, w, opts), inputs, eps=1e-6, atol=1e-6)


def test_degenerate_and_offscreen_gaussians_render_nothing():
    h, w = 8, 8
    means = torch.tensor([[4.0, 4.0], [4.0, 4.0], [-50.0, 4.0], [4.0, 1e9]], dtype=F64)
    cov = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0]], dtype=F64)
    colors = torch.ones(4, 2, dtype=F64)  # two channels: any C works
    out = render(means, cov, colors, h, w, RenderOptions(backend="torch"))
    assert out.shape == (2, h, w) and torch.count_nonzero(out) == 0
    _, valid = cov_to_conic(cov)
    assert valid.tolist() == [False, False, True, True]


def test_zero_gaussians_and_one_pixel():
    empty = torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0, 3)
    assert torch.count_nonzero(render(*empty, 4, 5)) == 0
    m = torch.tensor([[0.2, -0.1]], dtype=F64)
    c = torch.tensor([[0.5, 0.1, 0.7]], dtype=F64)
    k = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    torch.testing.assert_close(render(m, c, k, 1, 1), render_reference(m, c, k, 1, 1))


def test_near_singular_covariance_matches_reference():
    h, w = 12, 12
    means = torch.tensor([[5.5, 6.0], [3.0, 3.0]], dtype=F64)
    cov = torch.tensor([[4.0, 3.999, 4.0], [9.0, 0.0, 1e-4]], dtype=F64)  # needle-thin ellipses
    colors = torch.rand(2, 3, dtype=F64)
    torch.testing.assert_close(render(means, cov, colors, h, w), render_reference(means, cov, colors, h, w))


def test_float32_close_to_float64():
    h, w = 30, 30
    means, cov, colors = random_gaussians(200, h, w, seed=6, scale=2.0)
    out32 = render(means.float(), cov.float(), colors.float(), h, w)
    ref = render_reference(means, cov, colors, h, w)
    # float32 exp and sums over ~50 terms: a few ulps of the largest pixel value
    torch.testing.assert_close(out32.double(), ref, rtol=1e-5, atol=1e-5)


def test_binning_counts_every_overlapped_tile():
    means = torch.tensor([[15.5, 15.5], [0.0, 0.0]])
    radius = torch.tensor([1.0, 20.0])
    bins = bin_gaussians(means, radius, 32, 32, tile_size=16)
    per_g = torch.bincount(bins.gid, minlength=2).tolist()
    assert per_g == [4, 4]  # the first straddles the centre of 4 tiles; the second covers the image


def test_scale_rot_matches_rotated_matrix():
    scale = torch.tensor([[2.0, 0.5]], dtype=F64)
    theta = torch.tensor([0.3], dtype=F64)
    r = torch.tensor([[torch.cos(theta), -torch.sin(theta)], [torch.sin(theta), torch.cos(theta)]], dtype=F64)
    full = r @ torch.diag(scale[0] ** 2) @ r.T
    torch.testing.assert_close(
        scale_rot_to_cov(scale, theta)[0], torch.stack([full[0, 0], full[0, 1], full[1, 1]])
    )


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"means must be \[N, 2\]"):
        render(torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(3, 3), 4, 4)
    with pytest.raises(ValueError, match="cov must be"):
        render(torch.zeros(3, 2), torch.zeros(2, 3), torch.zeros(3, 3), 4, 4)
    with pytest.raises(KeyError, match="valid names"):
        render(torch.zeros(1, 2), torch.ones(1, 3), torch.ones(1, 3), 4, 4, RenderOptions(backend="nope"))


def test_renderer_table_resolves_auto_per_device_and_refuses_unknown_names():
    from gsbench.gaussians.render import RENDERERS, backend_names, resolve_backend
    from gsbench.registry import UnknownNameError

    assert {m for m, _ in RENDERERS} == {"sum", "topk"}
    assert backend_names()[0] == "auto"
    cpu = resolve_backend("auto", "cpu")
    assert cpu in ("numba", "torch") and RENDERERS[("sum", cpu)].available()
    assert resolve_backend("torch", "cpu", "topk") == "torch"
    with pytest.raises(UnknownNameError, match="valid names"):
        resolve_backend("cuda_magic", "cpu")


def test_kernels_package_imports_nothing_else_from_gsbench():
    """gsbench.kernels stands alone: only relative imports, triton and torch."""
    import ast
    from pathlib import Path

    import gsbench.kernels as k

    for path in Path(k.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not [n for n in names if n.split(".")[0] == "gsbench"], f"{path.name} imports gsbench"
