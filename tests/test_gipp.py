"""GaussianImage++: densification schedule, content-aware filter, pruning, growth placement, and the
compress task end to end through the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gsbench.codec import decode_bitstream
from gsbench.methods import FitContext, get_method
from gsbench.methods.gi_pp.config import GIPPConfig
from gsbench.methods.gi_pp.model import GaussianImagePPModel, edit_gaussians, filter_variance
from gsbench.methods.gi_pp.train import GrowthTrainer, growth_schedule
from helpers import gsbench


def test_paper_schedule_halves_the_remaining_budget():
    assert growth_schedule("paper", 5000, 50000, 5000) == [
        (5000, 3750),
        (10000, 4375),
        (15000, 4687),
        (20000, 4843),
        (25000, 4921),
        (30000, 4960),
        (35000, 4980),
        (40000, 4990),
        (45000, 4995),
    ]
    counts = [n for _, n in growth_schedule("paper", 10000, 50000, 5000)]
    assert counts == [7500, 8750, 9375, 9687, 9843, 9921, 9960, 9980, 9990]


def test_code_schedule_caps_growth_and_fills_the_budget():
    assert growth_schedule("code", 5000, 50000, 5000) == [(5000, 3500), (10000, 4500), (15000, 5000)]
    assert [n for _, n in growth_schedule("code", 10000, 50000, 5000)] == [6000, 7000, 8000, 9000, 10000]
    # a short run: the last growth step (T - grow_every) adds the whole rest
    assert growth_schedule("code", 10000, 3000, 1000) == [(1000, 6000), (2000, 10000)]


def test_filter_variance_values():
    assert filter_variance(512, 768, 2500) == pytest.approx(512 * 768 / (9 * math.pi * 2500))
    assert filter_variance(512, 768, 2500) == pytest.approx(5.563, abs=1e-3)
    assert filter_variance(512, 768, 10) == 300.0  # capped
    model = GaussianImagePPModel(100, 64, 96, seed=0)
    assert torch.allclose(model.filter_var, torch.full((100,), 64 * 96 / (9 * math.pi * 100)))
    stored = model.stored_cov()
    assert torch.allclose(stored[:, 0] - model.cov[:, 0], model.filter_var)
    assert torch.equal(stored[:, 1], model.cov[:, 1])


def _trainer(variant: str, budget: int = 40):
    torch.manual_seed(0)
    target = torch.zeros(3, 16, 24)
    target[:, 4, 7] = torch.tensor([1.0, 0.5, 0.25])  # one bright pixel: the largest distortion
    model = GaussianImagePPModel(budget // 2, 16, 24, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    cfg = GIPPConfig.from_mapping({"variant": variant, "grow_every": 10, "prune_every": 5})
    return GrowthTrainer(model, target, cfg, budget, 100, opt, FitContext(progress=False)), model, opt


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_growth_places_gaussians_at_the_worst_pixels(variant):
    trainer, model, _ = _trainer(variant)
    with torch.no_grad():
        model.colors.zero_()
    trainer.on_step(10)
    assert model.num_gaussians == 30 if variant == "paper" else 40
    added = model.means[20:]
    assert added.shape[1] == 2 and torch.equal(added[0], torch.tensor([7.0, 4.0]))
    expected = [1.0, 0.5, 0.25] if variant == "paper" else [0.0, 0.0, 0.0]
    assert model.colors[20].tolist() == expected
    n_after = model.num_gaussians
    assert torch.allclose(
        model.filter_var[20:], torch.full((n_after - 20,), filter_variance(16, 24, n_after))
    )
    assert trainer.growth == [{"step": 10, "added": n_after - 20, "num_gaussians": n_after}]


def test_pruning_drops_non_positive_definite_and_keeps_adam_state():
    trainer, model, opt = _trainer("paper")
    model.render(None).sum().backward()
    opt.step()
    with torch.no_grad():
        model.cov[3] = torch.tensor([-50.0, 0.0, 1.0])  # not PD even with the filter
    trainer.on_step(5)
    assert model.num_gaussians == 19
    assert opt.param_groups[0]["params"][0] is model.means
    assert opt.state[model.means]["exp_avg"].shape == (19, 2)
    edit_gaussians(
        model,
        opt,
        extra={
            "means": torch.zeros(2, 2),
            "cov": torch.ones(2, 3),
            "colors": torch.zeros(2, 3),
            "filter_var": torch.ones(2),
        },
    )
    assert opt.state[model.cov]["exp_avg_sq"].shape == (21, 3)
    assert opt.state[model.cov]["exp_avg_sq"][-2:].abs().sum() == 0


def test_fit_reaches_the_schedule_and_records_it():
    torch.manual_seed(0)
    image = torch.rand(3, 20, 28)
    method = get_method(
        "gi_pp", {"grow_every": 10, "best_snapshot": True, "snapshot_every": 5}, {"iterations": 30}
    )
    fitted = method.fit(image, 64, FitContext(progress=False, log_every=10))
    info = fitted.info()
    assert [g["step"] for g in info["growth"]] == [10, 20]
    assert info["snapshot"] == "best" and info["snapshot_step"] % 5 == 0
    assert fitted.render().shape == (3, 20, 28)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gi_pp", "gi"])
def test_compress_task_end_to_end_on_kodak(method, tmp_path):
    """One Kodak image, tiny iterations, CPU: the file exists, decodes to the scored image, and its
    size is the bpp reported."""
    iters = (
        "train.iterations=60 codec.warmup=30 method.grow_every=20"
        if method == "gi_pp"
        else ("train.iterations=40 codec.qat_iterations=20")
    )
    res = gsbench(
        f"method={method}",
        "task=compress",
        "dataset=kodak",
        "dataset.images=[kodim01]",
        "gaussians=2000",
        *iters.split(),
        "device=cpu",
        "progress=false",
        "task.fps_repeats=2",
        "task.fps_warmup=1",
        "metrics.names=[psnr,ms_ssim]",
        f"hydra.run.dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (record_path,) = tmp_path.rglob("kodim01.json")
    rec = json.loads(record_path.read_text())
    assert rec["status"] == "ok" and rec["task"] == "compress"
    bitstream = record_path.parent / rec["bitstream"]
    assert bitstream.stat().st_size == rec["bitstream_bytes"]
    assert rec["bpp"] == pytest.approx(bitstream.stat().st_size * 8 / (512 * 768))
    assert rec["bpp_payload"] > 0 and rec["decode"]["decode_fps"] > 0 and rec["encode_seconds"] > 0
    decoded = decode_bitstream(bitstream.read_bytes()).render().clamp(0, 1)
    from gsbench.data import load_image
    from gsbench.metrics.psnr import psnr

    image, _ = load_image(rec["source"])
    assert psnr(image, decoded) == pytest.approx(rec["metrics"]["psnr"], abs=1e-4)
