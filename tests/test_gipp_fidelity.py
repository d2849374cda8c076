"""GaussianImage++ as its authors ran it: the two-stage codec and its stage schedule, fit reuse, the best
snapshot with its quantisers, sigmoid colours, the parameter count, the code's initial covariance,
growth and radius clip."""

from __future__ import annotations

import math

import pytest
import torch

from gsbench.codec import decode_bitstream
from gsbench.codec.quant import LsqPlusQuantiser
from gsbench.methods import FitContext, get_method
from gsbench.methods.gi_pp.codec import codec_schedule
from gsbench.methods.gi_pp.config import GIPPCodecConfig, GIPPConfig
from gsbench.methods.gi_pp.method import color_norm_for
from gsbench.methods.gi_pp.model import GaussianImagePPModel, clip_keep, positive_definite
from gsbench.methods.gi_pp.train import GrowthTrainer

CTX = FitContext(progress=False, log_every=0)


def _image(h: int = 16, w: int = 20) -> torch.Tensor:
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))


def test_codec_schedule_follows_train_iterations():
    defaults = GIPPCodecConfig.from_mapping({})
    assert codec_schedule(defaults, 50000) == {
        "iterations": 50000,
        "warmup": 6000,
        "source": "train.iterations",
    }
    assert codec_schedule(defaults, 50) == {"iterations": 50, "warmup": 6, "source": "train.iterations"}
    plan = codec_schedule(GIPPCodecConfig.from_mapping({"iterations": 100, "warmup": 30}), 50)
    assert plan == {"iterations": 100, "warmup": 30, "source": "codec.iterations"}


def test_two_stage_codec_schedule_and_gaussians_per_stage():
    """Stage 1 grows at 5, 10, 15 (of 20); stage 2 grows only in its warm-up (step 5 < 6), never prunes
    or grows in QAT, and encodes the best QAT snapshot."""
    cfg = {"grow_every": 5, "snapshot_every": 2}
    method = get_method("gi_pp", cfg, {"iterations": 20}, {"iterations": 12, "warmup": 6})
    enc = method.compress(_image(), 40, CTX)
    info = enc.info
    assert info["pipeline"] == "two_stage" and info["color_norm"] is True
    assert [g["step"] for g in info["fit"]["growth"]] == [5, 10, 15]
    assert info["fit"]["iterations"] == 20 and info["fit"]["fit"]["reused"] is False
    stages = info["stages"]
    assert {k: stages[k] for k in ("fit", "fit_reused", "warmup", "qat", "iterations_source")} == {
        "fit": 20, "fit_reused": False, "warmup": 5, "qat": 6, "iterations_source": "codec.iterations"
    }  # fmt: skip
    counts = stages["num_gaussians"]
    assert [g["num_gaussians"] for g in info["fit"]["growth"]] == [30, 35, 37] and counts["start"] == 37
    assert info["growth"] == [{"step": 5, "added": 1, "num_gaussians": 38}]  # in the warm-up only
    # the best warm-up snapshot (step 4, before that growth) is what QAT starts from, as the code
    assert info["warmup_snapshot"]["snapshot_step"] == 4 and counts["qat_start"] == 37
    assert counts["qat_end"] == counts["qat_start"]  # no growth or pruning during QAT
    assert enc.num_gaussians == counts["qat_end"] - info["dropped_at_encode"]
    assert [h["step"] for h in info["history"]] == [5, 11]  # the codec stage's own step count
    assert info["snapshot"] == "best" and 6 <= info["snapshot_step"] <= 11
    assert torch.equal(decode_bitstream(enc.data).render(), enc.preview())


def test_single_run_pipeline_is_kept():
    method = get_method("gi_pp", {"grow_every": 4}, {"iterations": 12}, {"pipeline": "single", "warmup": 6})
    info = method.compress(_image(), 30, CTX).info
    assert info["pipeline"] == "single" and "fit" not in info
    assert info["stages"]["fit"] == 0 and info["stages"]["warmup"] == 5 and info["stages"]["qat"] == 6
    assert [g["step"] for g in info["growth"]] == [4, 8]  # growth goes on during QAT in this pipeline


def test_codec_reuses_a_cached_representation_fit(tmp_path):
    cfg = {"grow_every": 5, "color_norm": True}
    codec = {"iterations": 6, "warmup": 3, "fit_cache": str(tmp_path)}
    method = get_method("gi_pp", cfg, {"iterations": 10}, codec)
    fitted = method.fit(_image(), 30, CTX)  # task=represent with the codec's colour activation
    assert fitted.info()["fit"]["reused"] is False and len(list(tmp_path.rglob("*.pt"))) == 1
    enc = method.compress(_image(), 30, CTX)
    assert enc.info["stages"]["fit_reused"] is True
    assert enc.info["fit"]["fit"]["cache"] == fitted.info()["fit"]["cache"]
    assert enc.info["stages"]["num_gaussians"]["start"] == fitted.num_gaussians
    uncached = get_method("gi_pp", cfg, {"iterations": 10}, {**codec, "fit_cache": None})
    assert uncached.compress(_image(), 30, CTX).data == enc.data  # reuse changes nothing in the file
    other = get_method("gi_pp", {**cfg, "lr": 0.01}, {"iterations": 10}, codec)  # another config
    assert other.compress(_image(), 30, CTX).info["stages"]["fit_reused"] is False


def test_represent_and_compress_colour_activation():
    defaults = GIPPConfig.from_mapping({})
    assert color_norm_for(defaults, "compress") is True and color_norm_for(defaults, "represent") is False
    assert color_norm_for(GIPPConfig.from_mapping({"color_norm": False}), "compress") is False
    assert color_norm_for(GIPPConfig.from_mapping({"color_norm": "true"}), "represent") is True
    with pytest.raises(ValueError, match=r"method\.color_norm must be one of auto, true, false"):
        GIPPConfig.from_mapping({"color_norm": "maybe"})
    model = GaussianImagePPModel(5, 8, 8, seed=0, color_norm=True)
    assert torch.allclose(model.color_values(), torch.full((5, 3), 0.5))  # sigmoid(0)
    rgb = torch.tensor([[0.2, 0.7, 0.5]])
    torch.testing.assert_close(torch.sigmoid(model.raw_colors(rgb)), rgb)


def test_best_snapshot_restores_lsq_step_and_offset():
    model = GaussianImagePPModel(6, 8, 8, seed=0)
    quant = LsqPlusQuantiser(6, 3)
    quant.init_from(torch.rand(6, 3))
    target = torch.zeros(3, 8, 8)
    cfg = {"best_snapshot": True}
    trainer = GrowthTrainer(
        model, target, GIPPConfig.from_mapping(cfg), 6, 10, torch.optim.Adam(model.parameters()), CTX
    )
    trainer.extra_modules = [quant]
    trainer.forward = lambda: torch.zeros(3, 8, 8)
    trainer.check_snapshot(3)
    scale, offset, means = quant.scale.detach().clone(), quant.offset.detach().clone(), model.means.clone()
    with torch.no_grad():
        quant.scale.mul_(2)
        quant.offset.add_(1)
        model.means.add_(1)
    trainer.forward = lambda: torch.ones(3, 8, 8)  # worse
    trainer.check_snapshot(4)
    assert trainer.restore_best()["snapshot_step"] == 3
    assert torch.equal(quant.scale, scale) and torch.equal(quant.offset, offset)
    assert torch.equal(model.means, means)


def test_parameter_count_is_eight_per_gaussian():
    fitted = get_method("gi_pp", {"grow_every": 0}, {"iterations": 2}).fit(_image(), 20, CTX)
    assert fitted.num_params == 8 * fitted.num_gaussians


def test_initial_covariance_is_uniform_plus_filter_only():
    model = GaussianImagePPModel(500, 32, 32, seed=1)
    assert model.cov.min() >= 0 and model.cov.max() < 1  # no (0.5, 0, 0.5) bound
    grown = model.new_cov(500)  # growth: U[0, 1) + (0.5, 0, 0.5), as the code
    assert grown[:, 0].min() >= 0.5 and grown[:, 2].min() >= 0.5 and grown[:, 1].max() < 1


def test_radius_clip_follows_the_official_ceil():
    cov = torch.tensor([[4.0, 0.0, 0.01], [1.0, 0.0, 0.0], [4.0, 0.0, 4.0]])
    # (4, 0, 0.01): 3 sqrt(0.01) = 0.3 px, ceil -> 1, not < 1: kept by the code; the exact rule drops it
    assert clip_keep(cov, 1.0, "official").tolist() == [True, False, True]
    assert clip_keep(cov, 1.0, "exact").tolist() == [False, False, True]
    assert math.isclose(3 * math.sqrt(0.01), 0.3)


def test_growth_drops_non_pd_covariances_and_uses_the_pre_step_render():
    model = GaussianImagePPModel(10, 16, 16, seed=2)
    target = torch.zeros(3, 16, 16)
    trainer = GrowthTrainer(
        model,
        target,
        GIPPConfig.from_mapping({"variant": "code"}),
        400,
        100,
        torch.optim.Adam(model.parameters()),
        CTX,
    )
    fake = torch.zeros(3, 16, 16)
    fake[:, 3, 9] = 1.0  # the kept training render says pixel (x=9, y=3) is the worst
    trainer.last_out = fake
    state = model.gen.get_state()
    drawn = torch.rand(200, 3, generator=torch.Generator().set_state(state)) + torch.tensor([0.5, 0, 0.5])
    expected = int(positive_definite(drawn).sum())
    assert 0 < expected < 200  # some of the draws are not positive definite
    trainer.grow(200)
    assert model.num_gaussians == 10 + expected
    assert model.means[10].tolist() == [9.0, 3.0]
    assert positive_definite(model.cov[10:].detach()).all()
