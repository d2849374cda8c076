"""Image-GS: top-K renderers, initialisation, progressive schedule, LOD records, bitstream, stacks, CLI."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gsbench.codec import BitstreamError, Container, decode_bitstream, decode_container, encode_container
from gsbench.data import DatasetError, ImageError, load_item, resolve_dataset
from gsbench.data.stacks import load_stack, save_stack_pngs
from gsbench.errors import UserError
from gsbench.gaussians import RenderOptions, cholesky_to_cov, cov_radius, cov_to_conic, render_topk
from gsbench.gaussians.reference import dense_weights
from gsbench.methods import FitContext, get_method
from gsbench.methods.image_gs.codec import encode
from gsbench.methods.image_gs.config import ImageGSConfig
from gsbench.methods.image_gs.model import gradient_magnitude, initial_model, sample_pixels
from gsbench.methods.image_gs.schedule import plan_schedule
from gsbench.runner import run_job
from helpers import compose_config, gsbench, random_gaussians

ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64
QUIET = FitContext(progress=False, log_every=0)


def reference_topk(means, cov, colors, h, w, k, normalise, cutoff, eps=1e-10):
    """Dense top-K (float64, O(N H W)): torch.topk over every Gaussian's masked weight."""
    wts = dense_weights(means, cov, h, w, cutoff=cutoff)
    top_w, top_i = torch.topk(wts, min(k, wts.shape[0]), dim=0)
    num = torch.einsum("khw,khwc->chw", top_w, colors[top_i])
    return num / (top_w.sum(0) + eps) if normalise else num


def grads(fn, inputs, cot):
    x = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(x[0], cholesky_to_cov(x[1]), x[2])
    return out.detach(), torch.autograd.grad((out * cot).sum(), x)


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    "h,w,n,k,cutoff,tile,chunk,normalise,channels",
    [
        (20, 30, 60, 10, True, 8, 1 << 21, True, 3),
        (13, 18, 50, 3, False, 4, 300, True, 1),
        (16, 16, 70, 10, True, 16, 1 << 21, True, 9),
        (21, 17, 40, 4, True, 8, 500, False, 3),
        (9, 11, 3, 10, True, 8, 1 << 21, True, 3),  # fewer Gaussians than k
    ],
)
def test_topk_torch_matches_dense_reference(h, w, n, k, cutoff, tile, chunk, normalise, channels):
    inputs = random_gaussians(n, h, w, seed=n + k, channels=channels, margin=5.0, color_range=(0.0, 1.0))
    cot = torch.randn(channels, h, w, dtype=F64, generator=torch.Generator().manual_seed(k))
    opts = RenderOptions(backend="torch", torch_tile_size=tile, cutoff=cutoff, chunk_pixels=chunk)
    out, g = grads(
        lambda m, c, col: render_topk(m, c, col, h, w, opts, k=k, normalise=normalise), inputs, cot
    )
    ref, g_ref = grads(lambda m, c, col: reference_topk(m, c, col, h, w, k, normalise, cutoff), inputs, cot)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    assert out.abs().sum() > 0


def test_topk_tile_footprint_matches_dense_reference():
    """footprint="tile": a Gaussian competes at every pixel of the tiles its box touches (official kernel)."""
    h, w, k, tile = 20, 27, 5, 8
    means, chol, colors = random_gaussians(30, h, w, seed=7, margin=5.0, color_range=(0.0, 1.0))
    cot = torch.randn(3, h, w, dtype=F64, generator=torch.Generator().manual_seed(7))

    def dense(m, cov, col):
        conic, valid = cov_to_conic(cov)
        r = cov_radius(cov, valid)[:, None, None]
        ys, xs = torch.meshgrid(torch.arange(h, dtype=F64), torch.arange(w, dtype=F64), indexing="ij")
        dx, dy = xs - m[:, 0, None, None], ys - m[:, 1, None, None]
        box = (dx.abs() <= r) & (dy.abs() <= r) & valid[:, None, None]  # [N, H, W]
        ty, tx = -(-h // tile), -(-w // tile)
        pad = torch.zeros(box.shape[0], ty * tile, tx * tile, dtype=torch.bool)
        pad[:, :h, :w] = box
        touched = pad.reshape(-1, ty, tile, tx, tile).any(dim=(2, 4))  # tiles the box touches
        keep = touched.repeat_interleave(tile, 1).repeat_interleave(tile, 2)[:, :h, :w]
        a, b, c = (conic[:, i, None, None] for i in range(3))
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        wts = torch.where(keep & (sigma >= 0), torch.exp(-sigma), 0.0)
        top_w, top_i = torch.topk(wts, k, dim=0)
        return torch.einsum("khw,khwc->chw", top_w, col[top_i]) / (top_w.sum(0) + 1e-4)

    opts = RenderOptions(backend="torch", tile_size=tile, cutoff=False)
    fn = lambda m, c, col: render_topk(m, c, col, h, w, opts, k=k, eps=1e-4, footprint="tile")  # noqa: E731
    out, g = grads(fn, (means, chol, colors), cot)
    ref, g_ref = grads(dense, (means, chol, colors), cot)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for x, y in zip(g, g_ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-9)
    pixel = render_topk(means, cholesky_to_cov(chol), colors, h, w, opts, k=k, eps=1e-4)
    assert not torch.allclose(out, pixel)  # the footprints differ on these inputs


def test_topk_torch_matches_kernels_reference():
    """The tiled torch top-K rasterizer against the dense float64 reference."""
    from gsbench.gaussians import reference as ref_mod
    h, w = 18, 22
    inputs = random_gaussians(45, h, w, seed=4, margin=5.0, color_range=(0.0, 1.0))
    cot = torch.randn(3, h, w, dtype=F64, generator=torch.Generator().manual_seed(4))
    opts = RenderOptions(backend="torch")
    out, g = grads(lambda m, c, col: render_topk(m, c, col, h, w, opts, k=10, eps=1e-10), inputs, cot)
    ref, g_ref = grads(lambda m, c, col: ref_mod.render_topk_reference(m, c, col, h, w, k=10), inputs, cot)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_topk_triton_interpreter_matches_torch():
    pytest.importorskip("triton")
    from gsbench.kernels import is_interpreted
    from gsbench.kernels.rasterize_topk import _rasterize_topk_fwd_kernel

    if not is_interpreted(_rasterize_topk_fwd_kernel):
        pytest.skip("kernels were imported compiled (TRITON_INTERPRET unset before their import)")
    h, w = 12, 20
    inputs = random_gaussians(25, h, w, seed=9, margin=4.0, color_range=(0.0, 1.0))
    cot = torch.randn(3, h, w, dtype=F64, generator=torch.Generator().manual_seed(9))
    tri = RenderOptions(backend="triton", tile_size=8)
    tor = RenderOptions(backend="torch")
    out, g = grads(lambda m, c, col: render_topk(m, c, col, h, w, tri, k=4, eps=1e-4), inputs, cot)
    ref, g_ref = grads(lambda m, c, col: render_topk(m, c, col, h, w, tor, k=4, eps=1e-4), inputs, cot)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- initialisation


def edge_image(h=32, w=64, seed=0):
    """Flat grey on the left half, strong random texture on the right half."""
    img = torch.full((3, h, w), 0.5)
    g = torch.Generator().manual_seed(seed)
    img[:, :, w // 2 :] = torch.rand(3, h, w - w // 2, generator=g)
    return img


def test_saliency_init_samples_high_gradient_more():
    img, n = edge_image(), 400
    cfg = ImageGSConfig.from_mapping({})
    model = initial_model(img, n, cfg, torch.Generator().manual_seed(0))
    x = model.xy[:, 0].detach()
    right = (x > 0.5).float().mean().item()
    # Eq. 6: lambda/2 uniform + (1 - lambda) x the gradient's share on the right (~0.95) ~ 0.8
    assert right > 0.72, right
    grad = gradient_magnitude(img)
    assert grad[:, 33:].mean() > 10 * grad[:, :30].mean()
    # distinct pixel centres (no replacement), colours are the target there, scale 5 px stored as 1/5
    ij = torch.stack([(model.xy[:, 1] * 32 - 0.5).round(), (model.xy[:, 0] * 64 - 0.5).round()], 1).long()
    assert len({tuple(p) for p in ij.tolist()}) == n
    torch.testing.assert_close(model.feat.detach(), img[:, ij[:, 0], ij[:, 1]].t())
    assert torch.allclose(model.scale, torch.full_like(model.scale, 0.2))
    assert torch.count_nonzero(model.rot) == 0

    uniform = initial_model(
        img, n, ImageGSConfig.from_mapping({"init": "random"}), torch.Generator().manual_seed(0)
    )
    share = (uniform.xy[:, 0] > 0.5).float().mean().item()
    assert 0.4 < share < 0.6, share
    no_color = initial_model(
        img, n, ImageGSConfig.from_mapping({"color_init": False}), torch.Generator().manual_seed(0)
    )
    assert not torch.allclose(no_color.feat, model.feat)
    direct = initial_model(
        img, 10, ImageGSConfig.from_mapping({"inverse_scale": False}), torch.Generator().manual_seed(0)
    )
    assert torch.allclose(direct.scale, torch.full_like(direct.scale, 5.0))


def test_sample_pixels_proportional_and_distinct():
    weight = torch.tensor([0.0, 1.0, 3.0, 0.0] * 50)
    idx = sample_pixels(weight, 60, torch.Generator().manual_seed(1))
    assert idx.unique().numel() == 60 and weight[idx].min() > 0
    counts = torch.bincount(idx % 4, minlength=4)
    assert counts[2] > 1.5 * counts[1]
    assert sample_pixels(weight, 250, torch.Generator().manual_seed(1)).numel() == 250  # more than pixels


# --------------------------------------------------------------------------- schedule and LOD


def test_schedule_counts():
    paper = plan_schedule(10000, 5000, ImageGSConfig.from_mapping({}))
    assert paper.initial == 5000 and not paper.rescaled
    assert paper.additions == ((500, 1250), (1000, 1250), (1500, 1250), (2000, 1250))
    assert paper.counts() == [5000, 6250, 7500, 8750, 10000]
    odd = plan_schedule(301, 5000, ImageGSConfig.from_mapping({}))
    assert odd.counts() == [151, 189, 227, 265, 301]
    short = plan_schedule(300, 30, ImageGSConfig.from_mapping({}))
    assert short.rescaled and short.add_every == 6 and [s for s, _ in short.additions] == [6, 12, 18, 24]
    assert plan_schedule(300, 30, ImageGSConfig.from_mapping({"add_every": 5})).additions[-1] == (20, 36)
    assert plan_schedule(300, 3, ImageGSConfig.from_mapping({})).counts() == [300]
    assert plan_schedule(300, 30, ImageGSConfig.from_mapping({"progressive": False})).counts() == [300]


def test_fit_adds_gaussians_and_records_lod():
    img = edge_image(24, 32)
    method = get_method("image_gs", {"name": "image_gs"}, {"iterations": 10})
    fitted = method.fit(img, 40, QUIET)
    info = fitted.info()
    assert fitted.num_gaussians == 40 and fitted.num_params == 40 * 8
    assert info["schedule"]["additions"] == [[2, 5], [4, 5], [6, 5], [8, 5]]
    lod = info["lod"]
    assert [e["step"] for e in lod] == [2, 4, 6, 8, 10]
    assert [e["num_gaussians"] for e in lod] == [20, 25, 30, 35, 40]
    assert all(np.isfinite(e["psnr"]) and e["bpp_payload"] > 0 for e in lod)
    assert lod[-1]["bpp_payload"] == pytest.approx(8 * 16 * 40 / (24 * 32))
    assert [e["num_gaussians"] for e in info["lod_prefix"]] == [20, 25, 30, 35, 40]
    assert info["lod_prefix"][-1]["psnr"] == pytest.approx(lod[-1]["psnr"])
    assert fitted.render().shape == (3, 24, 32)
    json.dumps(info)  # goes into the record as it is


def test_config_validation_and_ablation_modes():
    with pytest.raises(UserError, match="init"):
        get_method("image_gs", {"init": "gradient"}, {"iterations": 1})
    with pytest.raises(UserError, match="unknown image_gs option"):
        get_method("image_gs", {"topk": 5}, {"iterations": 1})
    with pytest.raises(UserError, match="true or false"):
        get_method("image_gs", {"color_init": 1}, {"iterations": 1})
    assert ImageGSConfig.from_mapping({"topk_norm": False}).mode == "sum"
    assert ImageGSConfig.from_mapping({"topk_norm": False, "no_norm": "topk_sum"}).mode == "topk_sum"
    img = edge_image(16, 20)
    for flags in ({"topk_norm": False}, {"inverse_scale": False, "init": "random", "color_init": False}):
        fitted = get_method("image_gs", flags, {"iterations": 3}).fit(img, 12, QUIET)
        assert torch.isfinite(fitted.render()).all()


# --------------------------------------------------------------------------- bitstream


@pytest.fixture(scope="module")
def encoded():
    img = edge_image(24, 32)
    method = get_method("image_gs", {"name": "image_gs"}, {"iterations": 6}, {"bits": 16})
    return img, method.compress(img, 30, QUIET)


def test_bitstream_round_trip(encoded):
    _, enc = encoded
    assert enc.num_gaussians == 30
    assert enc.bpp_payload == pytest.approx(8 * 16 * 30 / (24 * 32))
    dec = decode_bitstream(enc.data)
    assert (dec.height, dec.width, dec.num_gaussians) == (24, 32, 30)
    assert torch.equal(dec.render(), enc.preview())
    again, _ = encode(dec.values, 24, 32, dec.spec, bits=16, entropy=False)
    assert again == enc.data
    assert enc.info["psnr_quantised"] == pytest.approx(enc.info["psnr_unquantised"], abs=0.05)
    assert [e["num_gaussians"] for e in enc.info["lod"]] == [15, 19, 23, 27, 30]


def test_low_bits_and_entropy_round_trip():
    img = edge_image(16, 24)
    method = get_method("image_gs", {}, {"iterations": 4}, {"bits": 6, "entropy": True, "qat": True})
    enc = method.compress(img, 20, QUIET)
    dec = decode_bitstream(enc.data)
    assert torch.equal(dec.render(), enc.preview())
    assert enc.bpp_payload == pytest.approx(8 * 6 * 20 / (16 * 24))


def test_truncated_or_corrupt_files_raise(encoded):
    _, enc = encoded
    data = enc.data
    for bad in (data[: len(data) // 2], data[:-1], data[:20], b"", data[:-5] + b"\x00" * 5):
        with pytest.raises(BitstreamError):
            decode_bitstream(bad)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(BitstreamError):
        decode_bitstream(bytes(flipped))

    c = decode_container(data)
    head, attr = c.sections["HEAD"], c.sections["ATTR"]

    def rebuilt(**kw):  # a well-formed container (valid CRC) around bad sections
        fields = dict(method="image_gs", height=c.height, width=c.width, num_gaussians=c.num_gaussians)
        fields.update(kw)
        sections = {"HEAD": fields.pop("head", head), "ATTR": fields.pop("attr", attr)}
        return encode_container(Container(**fields, sections=sections))

    cases = {
        "channels": head[:1] + b"\x00" + head[2:],
        "bits": head[:2] + b"\x14" + head[3:],
        "mode": head[:3] + b"\x07" + head[4:],
        "k": head[:4] + b"\x00" + head[5:],
        "eps": head[:6] + struct.pack("<f", float("nan")) + head[10:],
        "trailing": head + b"\x00",
        "short": head[:-4],
        "scale": head[:10 + 16] + struct.pack("<ff", -1.0, 0.5) + head[10 + 24 :],
        "minmax": head[:10] + struct.pack("<ff", 1.0, 0.0) + head[18:],
    }  # fmt: skip
    for name, bad_head in cases.items():
        with pytest.raises(BitstreamError):
            decode_bitstream(rebuilt(head=bad_head))
        assert name
    for bad in (attr[:-3], attr + b"\x00", b""):
        with pytest.raises(BitstreamError):
            decode_bitstream(rebuilt(attr=bad))
    with pytest.raises(BitstreamError):  # the header claims more Gaussians than the streams hold
        decode_bitstream(rebuilt(num_gaussians=c.num_gaussians + 1))
    with pytest.raises(BitstreamError):
        decode_bitstream(
            encode_container(Container("image_gs", c.height, c.width, c.num_gaussians, {"HEAD": head}))
        )


# --------------------------------------------------------------------------- texture stacks


def make_stack(folder: Path, h=20, w=24, seed=0) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / "a_diffuse.png")
    Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / "b_normal.png")
    Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8), mode="L").save(folder / "c_roughness.png")
    return folder


def test_texture_stack_dataset_and_fit(tmp_path):
    make_stack(tmp_path / "stacks" / "brick")
    make_stack(tmp_path / "stacks" / "wood", seed=1)
    items = resolve_dataset({"name": "texture_stack", "path": str(tmp_path / "stacks")}, None)
    assert [i.name for i in items] == ["brick", "wood"]
    one = resolve_dataset({"name": "texture_stack", "path": str(tmp_path / "stacks" / "wood")}, None)
    assert [i.name for i in one] == ["wood"]
    image, groups, _ = load_stack(items[0].path)
    assert image.shape == (7, 20, 24)
    assert [(g.name, g.start, g.channels) for g in groups] == [
        ("a_diffuse", 0, 3), ("b_normal", 3, 3), ("c_roughness", 6, 1)
    ]  # fmt: skip
    loaded = load_item(items[0])
    assert torch.equal(loaded.image, image) and list(loaded.groups) == groups
    assert loaded.record_fields()["channel_groups"][2] == {"name": "c_roughness", "start": 6, "channels": 1}
    assert loaded.loggable(image) is None  # a stack is no RGB picture for the image loggers
    names = save_stack_pngs(image, groups, tmp_path / "out", "brick")
    assert names == ["brick_a_diffuse.png", "brick_b_normal.png", "brick_c_roughness.png"]
    assert Image.open(tmp_path / "out" / names[2]).mode == "L"

    Image.new("L", (5, 5)).save(tmp_path / "stacks" / "wood" / "d_small.png")
    with pytest.raises(ImageError, match="size"):
        load_stack(tmp_path / "stacks" / "wood")
    with pytest.raises(ImageError, match="size"):
        load_item(items[1])
    with pytest.raises(DatasetError):
        resolve_dataset({"name": "texture_stack", "path": str(tmp_path / "nope")}, None)


def test_texture_stack_compress_through_the_runner(tmp_path):
    """A stack goes through the job like an image: compressed, decoded, scored per channel group."""
    make_stack(tmp_path / "stacks" / "brick")
    cfg = compose_config(
        "method=image_gs", "task=compress", "dataset=texture_stack", f"dataset.path={tmp_path / 'stacks'}",
        "gaussians=24", "train.iterations=5", "device=cpu", "progress=false", "logger=none",
        "task.fps_repeats=1", "task.fps_warmup=0", "metrics.names=[psnr,ssim]",
    )  # fmt: skip
    result = run_job(cfg, tmp_path / "out")
    assert not result.failed
    rec = json.loads((result.records_dir / "brick.json").read_text())
    assert rec["status"] == "ok", rec.get("error")
    assert sum(g["channels"] for g in rec["channel_groups"]) == 7 and rec["num_gaussians"] == 24
    assert (rec["height"], rec["width"]) == (20, 24)
    assert rec["bpp_payload"] == pytest.approx(12 * 16 * 24 / (20 * 24))
    assert rec["method_info"]["bppc_payload"] == pytest.approx(rec["bpp_payload"] / 7)
    for key in ("psnr", "a_diffuse/psnr", "b_normal/ssim", "c_roughness/psnr", "c_roughness/ssim"):
        assert np.isfinite(rec["metrics"][key]), key
    assert rec["bpp"] > rec["bpp_payload"]  # the file also holds a header and the ranges
    assert rec["reconstruction"] == ["brick_a_diffuse.png", "brick_b_normal.png", "brick_c_roughness.png"]
    assert Image.open(result.records_dir / rec["reconstruction"][2]).mode == "L"


# --------------------------------------------------------------------------- command line


TINY = ["dataset=kodak", "dataset.limit=1", "gaussians=300", "train.iterations=30", "device=cpu",
        "progress=false", "task.fps_repeats=2", "task.fps_warmup=1", "metrics.names=[psnr,ssim]"]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("task", ["compress", "represent"])
def test_cli_tiny_run(task, tmp_path, kodak_dir):
    start = time.perf_counter()
    res = gsbench("method=image_gs", f"task={task}", *TINY, f"hydra.run.dir={tmp_path}", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    (path,) = list(tmp_path.rglob("records/**/kodim01.json"))
    rec = json.loads(path.read_text())
    assert rec["status"] == "ok", rec.get("error")
    assert rec["num_gaussians"] == 300
    info = rec["method_info"]
    assert [e["num_gaussians"] for e in info["lod"]] == [150, 188, 226, 264, 300]
    if task == "compress":
        assert rec["bpp_payload"] == pytest.approx(8 * 16 * 300 / (768 * 512))
        assert (path.parent / rec["bitstream"]).stat().st_size == rec["bitstream_bytes"]
    print(f"\nimage_gs {task}: psnr {rec['metrics']['psnr']:.2f} dB, bpp {rec.get('bpp')}, "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip


def test_configs_compose():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose(overrides=["+dataset=texture_stack"])
        assert cfg.dataset.name == "texture_stack" and cfg.dataset.subdir == "texture_stacks"
        cfg = compose(overrides=["+method=image_gs"])
    assert cfg.method.name == "image_gs" and cfg.train.iterations == 5000 and cfg.codec.bits == 16
    method = get_method("image_gs", cfg.method, cfg.train, cfg.codec)
    assert method.config == ImageGSConfig.from_mapping({})  # Hydra's node and the YAML's defaults agree
    # the YAML holds the paper's values (the single source of the defaults)
    paper = {"init": "saliency", "k": 10, "init_scale": 5.0, "lambda_init": 0.3, "lr_position": 5e-4}
    paper |= {"lr_color": 5e-3, "lr_scale": 2e-3, "lr_rotation": 2e-3, "ssim_weight": 0.1, "add_times": 4}
    paper |= {"initial_ratio": 0.5, "add_every": 500, "bits": 16, "schedule": "paper", "topk_norm": True}
    assert {k: getattr(method.config, k) for k in paper} == paper
    assert method.config.eps == float(np.float32(1e-4))  # rounded to float32, as the file stores it
