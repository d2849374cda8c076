"""GaussianImage as its authors ran it: the official Cholesky gradient (``render.legacy_cholesky_grad``)
in every backend, and the codec's iteration count and best QAT snapshot."""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # Triton runs on the CPU through its interpreter

import pytest
import torch

from gsbench.codec import decode_bitstream
from gsbench.gaussians import RENDERERS, RenderOptions, cholesky_to_cov, render
from gsbench.gaussians.params import cholesky_to_cov_legacy
from gsbench.methods import FitContext, get_method
from gsbench.methods.base import psnr_from_mse
from gsbench.methods.gi.codec import module_snapshot, qat_iterations
from gsbench.methods.gi.config import GICodecConfig
from gsbench.methods.gi.model import GaussianImageModel

H, W = 12, 16


def _backends() -> list[str]:
    names = sorted({b for mode, b in RENDERERS if mode == "sum"})
    return [b for b in names if RENDERERS[("sum", b)].available()]


def official(chol: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """backward2d.cu, lines 39-40: ``grad_l11 = 2 l11 G11 + 2 l21 G12``, ``grad_l21 = 2 l11 G12 +
    2 l21 G22``, ``grad_l22 = 2 l22 G22`` (``G12``: the gradient of the packed off-diagonal)."""
    l1, l2, l3 = chol.unbind(-1)
    ga, gb, gc = g.unbind(-1)
    return torch.stack([2 * l1 * ga + 2 * l2 * gb, 2 * l1 * gb + 2 * l2 * gc, 2 * l3 * gc], -1)


def exact(chol: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    l1, l2, l3 = chol.unbind(-1)
    ga, gb, gc = g.unbind(-1)
    return torch.stack([2 * l1 * ga + l2 * gb, l1 * gb + 2 * l2 * gc, 2 * l3 * gc], -1)


def _scene(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    means = torch.rand(6, 2, generator=gen) * torch.tensor([W, H])
    chol = torch.rand(6, 3, generator=gen) + torch.tensor([1.0, -0.5, 1.0])
    colors = torch.rand(6, 3, generator=gen)
    weight = torch.randn(3, H, W, generator=gen)
    return means, chol, colors, weight


@pytest.mark.parametrize("backend", _backends())
def test_legacy_cholesky_gradient_is_the_official_formula(backend):
    means, chol, colors, weight = _scene()
    opts = RenderOptions(backend=backend, cutoff=False)
    cov = cholesky_to_cov(chol).detach().requires_grad_(True)
    (render(means, cov, colors, H, W, opts) * weight).sum().backward()
    g = cov.grad  # dL/d(a, b, c) of this backend
    assert g[:, 1].abs().max() > 1e-4  # the off-diagonal term matters in this scene
    grads = {}
    for name, fn in (("legacy", cholesky_to_cov_legacy), ("exact", cholesky_to_cov)):
        leaf = chol.clone().requires_grad_(True)
        out = render(means, fn(leaf), colors, H, W, opts)
        (out * weight).sum().backward()
        grads[name] = leaf.grad
    torch.testing.assert_close(grads["legacy"], official(chol, g), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads["exact"], exact(chol, g), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(grads["legacy"], grads["exact"])
    assert torch.equal(cholesky_to_cov_legacy(chol), cholesky_to_cov(chol))  # same forward


def test_gi_model_uses_the_legacy_gradient_when_asked():
    model = GaussianImageModel(20, H, W, seed=3)
    target = torch.rand(3, H, W)
    grads = {}
    for legacy in (False, True):
        model.zero_grad()
        opts = RenderOptions(backend="torch", legacy_cholesky_grad=legacy)
        ((model.render(opts).clamp(0, 1) - target) ** 2).mean().backward()
        grads[legacy] = model.cholesky.grad.clone()
    chol = (model.cholesky + model.cholesky_bound).detach()
    # G: this render's gradient with respect to the packed covariance
    model.zero_grad()
    _, cov, _ = model.gaussians()
    cov_leaf = cov.detach().requires_grad_(True)
    means, _, colors = model.gaussians()
    out = render(means.detach(), cov_leaf, colors.detach(), H, W, RenderOptions(backend="torch"))
    ((out.clamp(0, 1) - target) ** 2).mean().backward()
    torch.testing.assert_close(grads[True], official(chol, cov_leaf.grad), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(grads[False], exact(chol, cov_leaf.grad), rtol=1e-4, atol=1e-7)


def test_codec_iterations_follow_train_iterations_unless_set():
    assert qat_iterations(GICodecConfig.from_mapping({}).qat_iterations, 50) == (50, "train.iterations")
    assert qat_iterations(None, 50) == (50, "train.iterations")
    assert qat_iterations(GICodecConfig.from_mapping({"qat_iterations": 7}).qat_iterations, 50) == (
        7,
        "codec.qat_iterations",
    )
    image = torch.rand(3, H, W)
    gi = get_method("gi", {"lr": 1e-2}, {"iterations": 3}, {"snapshot_every": 1})
    enc = gi.compress(image, 30, FitContext(progress=False, log_every=1))
    assert enc.info["qat_iterations"] == 3 and enc.info["qat_iterations_source"] == "train.iterations"
    assert [h["step"] for h in enc.info["history"]] == [1, 2, 3]
    assert enc.info["snapshot"] == "best" and 1 <= enc.info["snapshot_step"] <= 3
    assert torch.equal(decode_bitstream(enc.data).render(), enc.preview())


def test_best_snapshot_restores_the_quantisers_too():
    from gsbench.codec.quant import LsqPlusQuantiser
    from gsbench.codec.rvq import ResidualVQ

    model = GaussianImageModel(10, H, W, seed=0)
    q = LsqPlusQuantiser(6, 3)
    q.init_from(torch.rand(10, 3))
    rvq = ResidualVQ(3, 2, 4, 0.8, seed=0)
    rvq(torch.rand(10, 3))  # k-means initialisation
    current = [0.0]  # the PSNR the next check scores
    snap = module_snapshot([model, q, rvq], lambda: current[0])
    image = torch.ones(3, H, W)
    saved = (model.cholesky.detach().clone(), q.scale.detach().clone(), q.offset.detach().clone())
    books = rvq.codebooks.clone()
    current[0] = psnr_from_mse(torch.nn.functional.mse_loss(torch.zeros(3, H, W), image).item())
    snap.check(1)  # PSNR 0 dB: the best so far
    with torch.no_grad():
        model.cholesky.add_(1.0)
        q.scale.mul_(3.0)
        q.offset.add_(0.25)
        rvq.codebooks.add_(0.5)
    current[0] = psnr_from_mse(torch.nn.functional.mse_loss(torch.full((3, H, W), -1.0), image).item())
    snap.check(2)  # worse: not kept
    assert snap.restore() == {"snapshot": "best", "snapshot_step": 1, "snapshot_psnr": 0.0}
    assert torch.equal(model.cholesky, saved[0])
    assert torch.equal(q.scale, saved[1]) and torch.equal(q.offset, saved[2])
    assert torch.equal(rvq.codebooks, books)
