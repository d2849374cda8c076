"""Classical-codec baselines (jpeg, webp, avif, jxl) and COIN: real files, bpp from them, round trips."""

from __future__ import annotations

import io
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from gsbench.codec import BitstreamError, Container, decode_bitstream, decode_container, encode_container
from gsbench.data import load_image
from gsbench.errors import UserError
from gsbench.methods import FitContext, get_method
from gsbench.methods.baselines import CODECS, pick_backend
from gsbench.methods.coin.codec import decode_coin, pack
from gsbench.methods.coin.method import Coin
from gsbench.methods.coin.model import Siren, num_params
from gsbench.runner.tasks import TASKS
from helpers import ROOT, cli, make_folder, records

CTX = FitContext(progress=False, log_every=0)
TASK_CFG = OmegaConf.create({"gaussians": 0, "task": {"name": "compress", "fps_warmup": 0, "fps_repeats": 1}})
MAGIC = {
    "jpeg": lambda b: b[:3] == b"\xff\xd8\xff",
    "webp": lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP",
    "avif": lambda b: b[4:12] in (b"ftypavif", b"ftypavis"),
    "jxl": lambda b: b[:2] == b"\xff\x0a" or b[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n",
}


def codec(name: str, **cfg):
    """The codec method ``name``, or a skip that names the package to install."""
    try:
        return get_method(name, {"name": name, **cfg}, {})
    except UserError as exc:
        pytest.skip(str(exc))


def independent_decode(name: str, data: bytes) -> np.ndarray:
    """Decode the file with whatever reads the format here (not through the method)."""
    from PIL import features

    if name != "jxl" and features.check({"jpeg": "jpg"}.get(name, name)):
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}[name]
            return np.asarray(im.convert("RGB"))
    imagecodecs = pytest.importorskip("imagecodecs")
    return imagecodecs.imread(data)


@pytest.mark.parametrize("name", list(CODECS))
def test_codec_round_trip_two_qualities(name, kodak_dir, tmp_path):
    image, _ = load_image(kodak_dir / "kodim23.png")
    _, height, width = image.shape
    results = {}
    for quality in (20, 80):
        method = codec(name, quality=quality)
        assert method.budget(12345) == quality  # the gaussians key is ignored
        out, recon = TASKS.get("compress")(TASK_CFG, method, image, CTX, tmp_path / f"q{quality}" / "kodim23")
        path = tmp_path / f"q{quality}" / out["bitstream"]
        data = path.read_bytes()
        assert path.suffix == CODECS[name].suffix and MAGIC[name](data), data[:16]
        assert out["bitstream_bytes"] == len(data)
        assert out["bpp"] == pytest.approx(len(data) * 8 / (height * width))
        assert out["num_gaussians"] == 0 and out["bpp_payload"] == out["bpp"]  # no analytic count: the file
        assert out["render"] is None  # the decoded pixels are the image: nothing is rendered
        info = out["method_info"]
        assert f"quality {quality}" in info["description"] and info["library_version"] in info["description"]
        assert info["quality"] == quality and info["settings"]
        # the file on disk really is an image of that format, and it is what was scored
        pixels = torch.from_numpy(independent_decode(name, data).copy()).permute(2, 0, 1).float() / 255
        assert pixels.shape == image.shape
        assert (pixels - recon).abs().max() <= 1 / 255 + 1e-6
        psnr = -10 * torch.log10(((recon.clamp(0, 1) - image) ** 2).mean()).item()
        results[quality] = (len(data), psnr)
    (lo_bytes, lo_psnr), (hi_bytes, hi_psnr) = results[20], results[80]
    assert hi_bytes > lo_bytes and hi_psnr > lo_psnr + 1, results
    assert 15 < lo_psnr < hi_psnr < 50


def test_jpeg_quality_setting_and_subsampling_are_what_the_record_says(kodak_dir):
    image, _ = load_image(kodak_dir / "kodim01.png")
    method = codec("jpeg", quality=40)
    encoded = method.compress(image, 40, CTX)
    with Image.open(io.BytesIO(encoded.data)) as im:
        # 4:2:0: the chroma components are sampled at half the luma rate in both directions
        assert [(h, v) for _, h, v, _ in im.layer] == [(2, 2), (1, 1), (1, 1)]
    assert encoded.info["settings"]["subsampling"] == "4:2:0"
    assert "Pillow" in encoded.info["library_version"] and "libjpeg-turbo" in encoded.info["library_version"]


@pytest.mark.parametrize("bad", [101, -1, 7.5, "high"])
def test_quality_out_of_range_is_a_user_error(bad):
    method = codec("jpeg", quality=bad)
    with pytest.raises(UserError, match=r"method.quality must be an integer in 0..100"):
        method.budget(0)


def test_codec_has_no_represent_task():
    method = codec("jpeg", quality=50)
    with pytest.raises(UserError, match="task=compress"):
        method.fit(torch.zeros(3, 8, 8), 50, CTX)
    assert method.tasks == ("compress",)


def test_unknown_library_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"valid: auto, Pillow"):
        get_method("jpeg", {"name": "jpeg", "quality": 50, "library": "libjpeg"}, {})


def test_missing_encoder_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # `import imagecodecs` now raises ImportError
    with pytest.raises(UserError, match=r"needs a JPEG XL encoder.*pip install imagecodecs"):
        get_method("jxl", {"name": "jxl", "quality": 50}, {})
    from PIL import features

    real = features.check
    monkeypatch.setattr(features, "check", lambda f: False if f == "avif" else real(f))
    with pytest.raises(UserError, match=r"needs a AVIF encoder.*pillow>=11.3.*imagecodecs"):
        get_method("avif", {"name": "avif", "quality": 50}, {})
    with pytest.raises(UserError, match="built without AVIF"):
        pick_backend(CODECS["avif"], "pillow")


def test_missing_encoder_on_the_command_line_is_one_line(tmp_path):
    folder = make_folder(tmp_path, n=1)
    code = (
        "import sys; sys.modules['imagecodecs'] = None\n"
        "from gsbench.__main__ import main\n"
        f"main(['method=jxl', 'task=compress', 'dataset=folder', 'dataset.path={folder}',"
        f" 'hydra.run.dir={tmp_path / 'out'}'])\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install imagecodecs" in lines[0], res.stderr


def test_jpeg_command_line_records_bpp_of_the_file(kodak_dir, tmp_path):
    out = tmp_path / "out"
    res = cli(
        "method=jpeg",
        "task=compress",
        "dataset=kodak",
        "dataset.limit=2",
        "method.quality=30",
        "save_reconstructions=false",
        "progress=false",
        "task.fps_repeats=2",
        "metrics.names=[psnr,psnr_8bit,ssim]",
        f"hydra.run.dir={out}",
    )
    assert res.returncode == 0, res.stderr
    recs = records(out)
    assert sorted(recs) == ["kodim01", "kodim02"]
    for name, rec in recs.items():
        assert rec["status"] == "ok" and rec["budget"] == 30 and rec["budget_name"] == "quality"
        assert rec["method"] == "jpeg" and rec["task"] == "compress"
        files = list(out.rglob(f"records/**/{name}.jpg"))
        assert len(files) == 1 and files[0].name == rec["bitstream"]
        size = files[0].stat().st_size
        assert rec["bitstream_bytes"] == size
        assert rec["bpp"] == pytest.approx(size * 8 / (rec["height"] * rec["width"]))
        assert "quality 30" in rec["method_info"]["description"]
        assert rec["metrics"]["psnr"] == pytest.approx(rec["metrics"]["psnr_8bit"])  # 8-bit decoder output
    assert not list(out.rglob("*.png"))  # save_reconstructions=false


# ---- COIN ----------------------------------------------------------------------------------------------


def test_coin_parameter_count_is_the_budget():
    assert num_params(28, 10) == Siren(28, 10).num_params == 7479
    coin = get_method("coin", {"name": "coin", "hidden": 28, "layers": 10}, {"iterations": 1})
    assert isinstance(coin, Coin) and coin.budget_name == "params" and coin.budget(99999) == 7479
    assert round(7479 * 16 / (768 * 512), 3) == 0.304  # COIN's "0.3 bpp" Kodak net
    with pytest.raises(UserError, match=r"method\.hidden"):
        get_method("coin", {"name": "coin", "hidden": 0, "layers": 10}, {"iterations": 1})


def test_siren_initialisation_follows_coin():
    net = Siren(16, 3, seed=0)
    first, hidden, last = net.linears[0], net.linears[1], net.linears[-1]
    assert first.weight.abs().max() <= 1 / 2 and first.bias.abs().max() <= 1 / 2
    bound = (6 / 16) ** 0.5 / 30
    for lin in (hidden, last):
        assert lin.weight.abs().max() <= bound and lin.bias.abs().max() <= bound
    assert torch.equal(Siren(16, 3, seed=0).linears[1].weight, hidden.weight)


@pytest.fixture
def one_thread():
    """Tiny nets: a second thread only adds synchronisation (and crawls on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _smooth_image(h: int = 24, w: int = 32) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([x, y, 0.5 + 0.4 * torch.sin(6 * x) * torch.cos(4 * y)])


def _coin(iterations: int = 150, hidden: int = 12, layers: int = 3) -> Coin:
    cfg = {"name": "coin", "hidden": hidden, "layers": layers, "lr": 1e-3}
    return get_method("coin", cfg, {"iterations": iterations})


def test_coin_fit_learns_and_renders(one_thread):
    image = _smooth_image()
    coin = _coin(iterations=200, hidden=32)
    fitted = coin.fit(image, coin.budget(0), CTX)
    recon = fitted.render()
    assert recon.shape == image.shape
    history = fitted.info()["history"]
    assert history[-1]["psnr"] > 30 and fitted.num_params == coin.budget(0) and fitted.num_gaussians == 0
    assert fitted.info()["best"]["step"] >= 100  # chosen in the second half of training


def test_coin_bitstream_round_trip(one_thread):
    image = _smooth_image()
    coin = _coin(iterations=60)
    encoded = coin.compress(image, coin.budget(0), CTX)
    params = coin.budget(0)
    assert encoded.bpp_payload == pytest.approx(params * 16 / (24 * 32))
    container = decode_container(encoded.data)
    assert container.method == "coin" and (container.height, container.width) == (24, 32)
    assert len(container.section("WGTS")) == 2 * params
    decoded = decode_bitstream(encoded.data)  # the file alone
    render = decoded.render()
    assert torch.equal(render, encoded.preview())  # the decoder sees exactly what the encoder saw
    assert pack(decoded.model, decoded.height, decoded.width) == encoded.data  # re-encode: same bytes
    assert decoded.num_gaussians == 0 and render.shape == image.shape
    # float16 weights cost little: the decoded PSNR is close to the float32 fit's best
    psnr = -10 * torch.log10(torch.mean(((render.clamp(0, 1) * 255).round() / 255 - image) ** 2)).item()
    assert psnr == pytest.approx(encoded.info["best"]["psnr"], abs=0.5)


def test_coin_corrupt_files_are_bitstream_errors(one_thread):
    coin = _coin(iterations=2, hidden=4, layers=2)
    data = coin.compress(_smooth_image(8, 8), coin.budget(0), CTX).data
    for bad in (data[:-1], data[: len(data) // 2], data[:10], data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]):
        with pytest.raises(BitstreamError):
            decode_bitstream(bad)
    arch = struct.pack("<HHBBff", 1024, 64, 2, 3, 30.0, 30.0)  # a huge net announced, 8 bytes of weights
    hostile = encode_container(Container("coin", 8, 8, 0, {"ARCH": arch, "WGTS": bytes(8)}))
    with pytest.raises(BitstreamError, match="needs"):
        decode_bitstream(hostile)
    for hidden, out_dim in ((0, 3), (4, 4)):  # zero width; an RGBA net
        arch = struct.pack("<HHBBff", hidden, 2, 2, out_dim, 30.0, 30.0)
        with pytest.raises(BitstreamError):
            decode_coin(Container("coin", 8, 8, 0, {"ARCH": arch, "WGTS": b""}), torch.device("cpu"))
    nan = np.full(num_params(4, 2), np.nan, dtype="<f2").tobytes()
    arch = struct.pack("<HHBBff", 4, 2, 2, 3, 30.0, 30.0)
    with pytest.raises(BitstreamError, match="non-finite"):
        decode_coin(Container("coin", 8, 8, 0, {"ARCH": arch, "WGTS": nan}), torch.device("cpu"))


@pytest.mark.slow
def test_coin_command_line_compress(tmp_path):
    folder = make_folder(tmp_path, n=1, size=(24, 32))
    out = tmp_path / "out"
    res = cli(
        "method=coin",
        "task=compress",
        "dataset=folder",
        f"dataset.path={folder}",
        "method.hidden=8",
        "method.layers=2",
        "train.iterations=30",
        "progress=false",
        "task.fps_repeats=2",
        "metrics.names=[psnr,ssim]",
        f"hydra.run.dir={out}",
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(out).values()
    assert rec["status"] == "ok" and rec["budget"] == num_params(8, 2) and rec["budget_name"] == "params"
    size = (out / next(out.rglob("records/**/img0.gsb")).relative_to(out)).stat().st_size
    assert rec["bpp"] == pytest.approx(size * 8 / (24 * 32))
    assert rec["bpp_payload"] == pytest.approx(num_params(8, 2) * 16 / (24 * 32))
    assert rec["bpp_payload"] < rec["bpp"]  # the file adds the container and the architecture
