"""The SSIM training loss: numba blur forward and adjoint against pytorch_msssim, the reference."""

from __future__ import annotations

import pytest
import torch
from pytorch_msssim import ssim as reference_ssim

from gsbench.gaussians.ssim_loss import GaussianBlurNumba, blur, ssim_loss, window


def pair(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=gen, dtype=dtype)
    y = (x + 0.2 * torch.rand(*shape, generator=gen, dtype=dtype)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("shape,win", [((1, 3, 40, 57), 11), ((2, 1, 23, 31), 7), ((1, 9, 11, 16), 11)])
def test_value_and_gradient_match_pytorch_msssim(dtype, tol, shape, win):
    seed = int(torch.randint(0, 2**31, (1,)))  # fresh inputs each run
    x, y = pair(shape, dtype, seed)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours = ssim_loss(a, y, win_size=win)
    ref = reference_ssim(b, y, data_range=1.0, win_size=win)
    assert ours.dtype == dtype
    assert ours.item() == pytest.approx(ref.item(), abs=tol), seed
    ours.backward()
    ref.backward()
    scale = float(b.grad.abs().max())
    assert float((a.grad - b.grad).abs().max()) <= 50 * tol * scale, seed


def test_blur_adjoint_gradcheck():
    x = torch.rand(2, 13, 15, dtype=torch.float64, requires_grad=True)
    g = window(5).double()
    assert torch.autograd.gradcheck(lambda t: GaussianBlurNumba.apply(t, g), (x,))


def test_blur_matches_the_convolution_path():
    x = torch.rand(1, 2, 30, 20, dtype=torch.float64)
    g = window(11)
    numba_out = blur(x, g)
    conv = torch.nn.functional.conv2d(x.reshape(2, 1, 30, 20), g.double().view(1, 1, -1, 1))
    conv = torch.nn.functional.conv2d(conv, g.double().view(1, 1, 1, -1)).reshape(1, 2, 20, 10)
    assert torch.allclose(numba_out, conv, rtol=0, atol=1e-14)


def test_results_do_not_depend_on_the_thread_count():
    x, y = pair((1, 3, 64, 48), torch.float32, 1)
    before = torch.get_num_threads()
    values = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            a = x.clone().requires_grad_()
            loss = ssim_loss(a, y)
            loss.backward()
            values.append((loss.detach(), a.grad))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(values[0][0], values[1][0]) and torch.equal(values[0][1], values[1][1])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        ssim_loss(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 21))
    with pytest.raises(ValueError, match="must fit"):
        ssim_loss(torch.rand(1, 3, 8, 20), torch.rand(1, 3, 8, 20))
