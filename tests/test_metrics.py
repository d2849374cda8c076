"""Tests for gsbench.metrics: independent recomputations, known properties and one published-code value."""

from __future__ import annotations

import functools
import http.server
import io
import json
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gsbench.metrics import (
    DEFAULT_METRICS,
    METRICS,
    PSNR_CAP_DB,
    compute_metrics,
    compute_metrics_with_notes,
)
from gsbench.metrics import lpips as lpips_mod
from gsbench.metrics._common import full_fp32_convs
from gsbench.metrics.lpips import AlexLPIPS, fetch_lpips_alex_weights, load_lpips_alex, resolve_lpips_weights
from gsbench.metrics.ssim import MS_SSIM_MIN_SIDE, ms_ssim_db


def _shared_dir() -> Path:
    # An explicit GSBENCH_SHARED wins; otherwise the shared/ folder that sits beside the repository.
    env = os.environ.get("GSBENCH_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


SHARED = _shared_dir()
KODIM01 = SHARED / "data" / "kodak" / "kodim01.png"
LPIPS_WEIGHTS = SHARED / "weights" / "lpips_alex_v0.1.pth"


def _smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """3xHxW image in [0, 1] with structure at several scales, quantised to 8 bits like real data."""
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(1, 3, h, w)
    for cells in (4, 16, 64):
        coarse = torch.rand(1, 3, max(2, h // cells), max(2, w // cells), generator=g)
        img += torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    img = (img / 3.0).clamp(0, 1)[0]
    return torch.round(img * 255) / 255


def _noisy(img: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return img + sigma * torch.randn(img.shape, generator=g)


def _to_tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255.0


@pytest.fixture
def random_weights(tmp_path: Path) -> Path:
    """A weight file in the real layout with random values: identity/symmetry hold for any weights."""
    torch.manual_seed(0)
    path = tmp_path / "random_lpips.pth"
    sd = AlexLPIPS().state_dict()
    for i in range(5):  # the official training keeps the heads nonnegative, so distances are >= 0
        sd[f"lin{i}.model.1.weight"].abs_()
    torch.save(sd, path)
    return path


# ---------------------------------------------------------------- PSNR


def test_psnr_matches_numpy_and_clamps() -> None:
    ref = _smooth_image(48, 64)
    rec = _noisy(ref, 0.2)  # large enough that many values leave [0, 1]
    assert (rec < 0).any() and (rec > 1).any()
    r, x = ref.double().numpy(), np.clip(rec.double().numpy(), 0.0, 1.0)
    expected = 10 * np.log10(1.0 / np.mean((r - x) ** 2))
    assert METRICS["psnr"](ref, rec) == pytest.approx(expected, abs=1e-6)
    # Unclamped, the same render would score lower: the clamp is what the number above relies on.
    unclamped = 10 * np.log10(1.0 / np.mean((r - rec.double().numpy()) ** 2))
    assert unclamped < expected - 0.1


def test_psnr_8bit_rounds_the_render() -> None:
    ref = _smooth_image(32, 32)
    # Less than half a level off: rounds back onto ref exactly.
    assert METRICS["psnr_8bit"](ref, ref + 0.4 / 255) == PSNR_CAP_DB
    assert METRICS["psnr"](ref, ref + 0.4 / 255) < 60.0
    # 0.7 level off: every unclamped pixel lands one level up.
    rec = ref + 0.7 / 255
    # Quantise in float32 as the metric does (and as an 8-bit loader makes ref): equal levels compare exact.
    q = (np.round(np.clip(rec.numpy(), 0, 1) * np.float32(255)) / np.float32(255)).astype(np.float64)
    expected = 10 * np.log10(1.0 / np.mean((ref.double().numpy() - q) ** 2))
    assert METRICS["psnr_8bit"](ref, rec) == pytest.approx(expected, abs=1e-6)


def test_identical_and_out_of_range_render_give_capped_psnr() -> None:
    ref = _smooth_image(32, 32)
    ref[:, :4] = 0.0
    ref[:, -4:] = 1.0
    rec = ref.clone()
    rec[:, :4] = -0.5  # overshoots that the clamp removes: the render is "identical" after clamping
    rec[:, -4:] = 1.7
    for name in ("psnr", "psnr_8bit"):
        assert METRICS[name](ref, ref) == PSNR_CAP_DB
        assert METRICS[name](ref, rec) == PSNR_CAP_DB


# ---------------------------------------------------------------- SSIM / MS-SSIM


def test_ssim_matches_skimage() -> None:
    skm = pytest.importorskip("skimage.metrics")
    ref = _smooth_image(64, 80)
    rec = _noisy(ref, 0.05).clamp(0, 1)
    # Same definition on both sides: 11-tap Gaussian, sigma 1.5 (skimage truncates at 3.5 sigma -> radius 5),
    # K1/K2 = 0.01/0.03, population covariances, mean over the window positions that fit (skimage crops the
    # 5-px border it filtered with reflection) and over channels. What remains is float32 round-off (2e-6
    # here). 1e-4 still catches a change of definition: sample covariance moves this case by 5e-4, sigma 1.0
    # or a 7-px uniform window by more than 0.05.
    expected = skm.structural_similarity(
        ref.permute(1, 2, 0).numpy(),
        rec.permute(1, 2, 0).numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
        channel_axis=2,
    )
    assert METRICS["ssim"](ref, rec) == pytest.approx(float(expected), abs=1e-4)


def test_ssim_and_ms_ssim_properties() -> None:
    ref = _smooth_image(MS_SSIM_MIN_SIDE, 192)
    assert METRICS["ssim"](ref, ref) == pytest.approx(1.0, abs=1e-6)
    assert METRICS["ms_ssim"](ref, ref) == pytest.approx(1.0, abs=1e-6)
    scores = [
        (METRICS["ssim"](ref, rec), METRICS["ms_ssim"](ref, rec))
        for rec in (_noisy(ref, 0.02), _noisy(ref, 0.1))
    ]
    assert 1.0 > scores[0][0] > scores[1][0]
    assert 1.0 > scores[0][1] > scores[1][1]
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(1.0) == PSNR_CAP_DB


def test_full_fp32_convs_restores_the_flag() -> None:
    before = torch.backends.cudnn.allow_tf32
    with full_fp32_convs(torch.device("cuda")):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before


def test_ms_ssim_none_on_small_image_with_note() -> None:
    ref = _smooth_image(MS_SSIM_MIN_SIDE - 1, 200)
    values, notes = compute_metrics_with_notes(ref, _noisy(ref, 0.05), ["ssim", "ms_ssim"])
    assert values["ms_ssim"] is None and values["ms_ssim_db"] is None
    assert values["ssim"] is not None
    assert len(notes) == 1 and notes[0].startswith("ms_ssim:") and "161" in notes[0]


# ---------------------------------------------------------------- LPIPS


@pytest.mark.skipif(
    not (KODIM01.is_file() and LPIPS_WEIGHTS.is_file()),
    reason=f"needs {KODIM01} and {LPIPS_WEIGHTS} (set GSBENCH_SHARED to the shared/ folder)",
)
def test_lpips_reference_value() -> None:
    ref_im = Image.open(KODIM01).convert("RGB")
    buf = io.BytesIO()
    ref_im.save(buf, format="JPEG", quality=10)
    buf.seek(0)
    rec = _to_tensor(Image.open(buf))
    # 0.243837 is the official lpips code on these weights, printed to 6 decimals (we get 0.2438366).
    # 1e-4 covers that rounding, float32 summation order across BLAS builds and small libjpeg version
    # differences in the JPEG, while any layout error (no scaling layer: 0.178; inputs left in [0, 1];
    # a missing or misplaced pool) moves the value by far more.
    value = METRICS["lpips"](_to_tensor(ref_im), rec, weights=LPIPS_WEIGHTS)
    assert value == pytest.approx(0.243837, abs=1e-4)


def test_lpips_identity_symmetry_and_cache(random_weights: Path) -> None:
    a = _smooth_image(64, 64)
    b = _noisy(a, 0.1)
    assert METRICS["lpips"](a, a, weights=random_weights) == 0.0
    d_ab = METRICS["lpips"](a, b, weights=random_weights)
    # Symmetric once both sides are in [0, 1] (the render is clamped, the reference is not).
    d_ba = METRICS["lpips"](b.clamp(0, 1), a, weights=random_weights)
    assert d_ab > 0.0 and d_ab == pytest.approx(d_ba, rel=1e-5)
    assert load_lpips_alex(random_weights) is load_lpips_alex(str(random_weights), "cpu")


def test_lpips_missing_weights_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lpips_mod.LPIPS_WEIGHTS_ENV, str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match=r"absent\.pth"):
        resolve_lpips_weights()
    monkeypatch.delenv(lpips_mod.LPIPS_WEIGHTS_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(lpips_mod, "WEIGHTS_NAME", "absent.pth")
    with pytest.raises(FileNotFoundError, match="fetch_lpips_alex_weights"):
        resolve_lpips_weights()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, served folder) of an HTTP server on 127.0.0.1: the fetch code never reaches the internet."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_lpips_weights_over_loopback(loopback_server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = loopback_server
    torch.manual_seed(1)
    net = AlexLPIPS()
    sd = net.state_dict()
    # Fakes with the upstream layouts: torchvision's AlexNet carries a classifier we must drop.
    alexnet = {k: v for k, v in sd.items() if k.startswith("features.")}
    alexnet["classifier.1.weight"] = torch.zeros(4, 4)
    torch.save(alexnet, root / "alexnet.pth")
    torch.save({k: v for k, v in sd.items() if k.startswith("lin")}, root / "alex.pth")

    dest = tmp_path / "out" / "lpips_alex_v0.1.pth"
    urls = {"alexnet_url": f"{base}/alexnet.pth", "lin_url": f"{base}/alex.pth"}
    assert fetch_lpips_alex_weights(dest, **urls, alexnet_sha256_prefix=None) == dest
    merged = torch.load(dest, weights_only=True)
    assert set(merged) == set(sd)
    assert all(torch.equal(merged[k], sd[k]) for k in sd)

    with pytest.raises(ValueError, match="sha256"):
        fetch_lpips_alex_weights(tmp_path / "bad.pth", **urls, alexnet_sha256_prefix="00000000")
    assert not (tmp_path / "bad.pth").exists()


# ---------------------------------------------------------------- FLIP


def test_flip_properties() -> None:
    pytest.importorskip("flip_evaluator")
    ref = _smooth_image(64, 96)
    assert METRICS["flip"](ref, ref) == 0.0
    mild, strong = METRICS["flip"](ref, _noisy(ref, 0.03)), METRICS["flip"](ref, _noisy(ref, 0.2))
    assert 0.0 < mild < strong <= 1.0


# ---------------------------------------------------------------- compute_metrics


def test_compute_metrics_all(random_weights: Path) -> None:
    ref = _smooth_image(MS_SSIM_MIN_SIDE, 170)
    rec = _noisy(ref, 0.05).double()  # any float dtype is accepted
    values, notes = compute_metrics_with_notes(ref, rec, lpips_weights=random_weights)
    assert list(values) == ["psnr", "psnr_8bit", "ssim", "ms_ssim", "ms_ssim_db", "lpips", "flip"]
    assert tuple(k for k in values if k != "ms_ssim_db") == DEFAULT_METRICS
    assert notes == []
    assert all(isinstance(v, float) and math.isfinite(v) for v in values.values())
    assert values["ms_ssim_db"] == pytest.approx(-10 * math.log10(1 - values["ms_ssim"]))
    assert compute_metrics(ref, rec, lpips_weights=random_weights) == values
    json.dumps(values, allow_nan=False)  # what the runner writes must be strict JSON


def test_compute_metrics_bad_inputs() -> None:
    ref = _smooth_image(32, 32)
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(ref, ref, ["psnr", "vif"])
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(ref, ref[:, :16], ["psnr"])
    with pytest.raises(ValueError, match="3xHxW"):
        compute_metrics(ref[None], ref[None], ["psnr"])
    rec = ref.clone()
    rec[0, 0, 0] = float("nan")
    values, notes = compute_metrics_with_notes(ref, rec, ["psnr", "ssim", "flip"])
    assert values == {"psnr": None, "ssim": None, "flip": None}
    assert len(notes) == 3 and all("non-finite" in n for n in notes)
