"""GaussianImage: initialisation as the public code, a short fit that improves, Adan as the official one."""

from __future__ import annotations

import math

import pytest
import torch
from pytorch_optimizer import Adan

from gsbench.methods import FitContext, FitDiverged, get_method
from gsbench.methods.gi.model import GaussianImageModel


def official_adan_steps(p0, grads, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8):
    """The update of sail-sg/Adan (vendored by GaussianImage), written out for a list of gradients."""
    b1, b2, b3 = betas
    p = p0.clone()
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    n = torch.zeros_like(p)
    prev = None
    for k, g in enumerate(grads, start=1):
        prev = g if prev is None else prev  # step 1: the gradient difference is zero
        diff = g - prev
        update = g + b2 * diff
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * diff
        n = b3 * n + (1 - b3) * update * update
        denom = n.sqrt() / math.sqrt(1 - b3**k) + eps
        p = p - lr * (m / (1 - b1**k) + b2 * v / (1 - b2**k)) / denom
        prev = g
    return p


def test_adan_package_matches_official_update():
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(7, dtype=torch.float64, generator=gen)
    grads = [torch.randn(7, dtype=torch.float64, generator=gen) for _ in range(6)]
    param = torch.nn.Parameter(p0.clone())
    opt = Adan([param], lr=1e-3)
    for g in grads:
        param.grad = g.clone()
        opt.step()
    torch.testing.assert_close(param.detach(), official_adan_steps(p0, grads), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("variant", ["cholesky", "rs"])
def test_init_matches_public_code(variant):
    model = GaussianImageModel(4000, 30, 40, variant=variant, seed=0)
    means, cov, colors = model.gaussians()
    assert means.shape == (4000, 2) and cov.shape == (4000, 3) and colors.shape == (4000, 3)
    assert means[:, 0].min() >= 0 and means[:, 0].max() <= 40 and means[:, 1].max() <= 30
    assert colors.min() >= 0 and colors.max() < 1
    sd = torch.sqrt(0.5 * (cov[:, 0] + cov[:, 2]))
    assert sd.min() > 0.4 and sd.max() < 2.2  # sigma about 0.5-1.5 px, as the code's bounds give
    assert sum(p.numel() for p in model.parameters()) == 4000 * 8  # both variants: 8 values per Gaussian


def test_same_seed_same_init_and_different_seed_differs():
    a = GaussianImageModel(10, 8, 8, seed=3).gaussians()[0]
    b = GaussianImageModel(10, 8, 8, seed=3).gaussians()[0]
    c = GaussianImageModel(10, 8, 8, seed=4).gaussians()[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def _blobs(h=24, w=32):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.stack([xs / w, ys / h, 0.5 + 0.5 * torch.sin(xs / 3.0)]).float()
    return img.clamp(0, 1)


@pytest.mark.parametrize("variant", ["cholesky", "rs"])
def test_short_fit_improves_psnr(variant):
    method = get_method("gi", {"variant": variant, "lr": 1e-2}, {"iterations": 150})
    fitted = method.fit(_blobs(), 300, FitContext(progress=False, log_every=50, label="blobs"))
    psnrs = [h["psnr"] for h in fitted.history]
    assert psnrs[-1] > psnrs[0] + 3.0
    assert fitted.render().shape == (3, 24, 32)
    assert fitted.num_gaussians == 300 and fitted.num_params == 2400


def test_nan_target_raises_fit_diverged():
    bad = _blobs()
    bad[0, 0, 0] = float("nan")
    method = get_method("gi", {}, {"iterations": 5})
    with pytest.raises(FitDiverged, match="iteration 1"):
        method.fit(bad, 20, FitContext(progress=False, label="nan-image"))


def test_unknown_variant_lists_valid():
    with pytest.raises(ValueError, match="cholesky, rs"):
        GaussianImageModel(3, 4, 4, variant="polar")
