"""Tests of gsbench.data: image loading policy, dataset registry/resolution and downloads.

Real data comes from the shared folder beside the repo (``<repo>/../shared/data``, or
``$GSBENCH_SHARED/data``); tests that need it skip when it is absent.  Nothing here touches the
internet: downloads go to a loopback ``http.server`` serving a temporary directory.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import threading
import zipfile
import zlib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from gsbench.data import (
    DATASETS,
    DatasetError,
    DownloadError,
    ImageError,
    ImageItem,
    dataset_names,
    fetch,
    load_image,
    resolve_dataset,
    sha256_file,
)
from gsbench.data.download import read_checksums
from gsbench.data.registry import select

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GSBENCH_SHARED") or ROOT.parent / "shared")
DATA = SHARED / "data"
KODAK = DATA / "kodak"
DIV2K = DATA / "div2k_valid_x2"
KODAK_NAMES = [f"kodim{i:02d}" for i in range(1, 25)]

needs_kodak = pytest.mark.skipif(
    not (KODAK / "kodim24.png").is_file(),
    reason=f"shared Kodak data not found in {KODAK} (set GSBENCH_SHARED)",
)
needs_div2k = pytest.mark.skipif(
    not (DIV2K / "0829x2.png").is_file(),
    reason=f"shared DIV2K data not found in {DIV2K} (set GSBENCH_SHARED)",
)


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Point every default download URL at a closed loopback port so nothing can reach the internet."""
    for name in dataset_names():
        monkeypatch.setenv(f"GSBENCH_{name.upper()}_URL", "http://127.0.0.1:9/nothing/")
    monkeypatch.delenv("GSBENCH_DATA", raising=False)


def ds(name: str, **kw) -> dict:
    """A dataset config node like configs/dataset/<name>.yaml, with overrides."""
    node = {"name": name, "subdir": name, "limit": None, "images": None, "path": None}
    node.update({"download": False, "verify": True, **kw})
    return node


# --------------------------------------------------------------------------- helpers making files


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG whose header claims ``w x h`` (8-bit RGB) with a tiny, useless IDAT."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """PNG Paeth predictor, vectorised."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def write_png16(path: Path, arr: np.ndarray) -> Path:
    """Write a 16-bit PNG (``H x W x C`` uint16, C = 1..4) using all five row filters in turn."""
    h, w, c = arr.shape
    bpp = 2 * c
    rows = arr.astype(">u2").view(np.uint8).reshape(h, w * bpp).astype(np.int32)
    out = []
    for y in range(h):
        row, prior = rows[y], rows[y - 1] if y else np.zeros_like(rows[0])
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        preds = [0, left, prior, (left + prior) // 2, _paeth(left, prior, upleft)]
        ftype = y % 5
        out.append(bytes([ftype]) + ((row - preds[ftype]) % 256).astype(np.uint8).tobytes())
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(out))) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def rand_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random uint8 array."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def rand_u16(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random uint16 array covering the full range."""
    return np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def as_hwc(t: torch.Tensor) -> np.ndarray:
    """3xHxW tensor -> HxWx3 float64 array."""
    assert t.dtype == torch.float32 and t.ndim == 3 and t.shape[0] == 3
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    return t.permute(1, 2, 0).double().numpy()


# --------------------------------------------------------------------------- registry / Kodak


def test_dataset_names():
    """All five datasets are registered."""
    assert {"kodak", "div2k_valid", "div2k_valid_x2", "folder", "samples"} <= set(dataset_names())
    assert "kodak" in DATASETS


def test_packaged_kodak_checksums_match_shared_sums():
    """The packaged sums are a copy of the shared SHA256SUMS and cover all 24 files."""
    from importlib.resources import files

    packaged = read_checksums((files("gsbench.data") / "checksums" / "kodak.sha256").read_text())
    assert sorted(packaged) == [f"{n}.png" for n in KODAK_NAMES]
    if (KODAK / "SHA256SUMS").is_file():
        assert packaged == read_checksums((KODAK / "SHA256SUMS").read_text())


@needs_kodak
def test_kodak_resolves_and_verifies_shared_copy():
    """24 items named kodim01..kodim24, sha256-verified against the packaged sums."""
    items = resolve_dataset(ds("kodak"), DATA)
    assert [it.name for it in items] == KODAK_NAMES
    assert all(isinstance(it, ImageItem) and it.path == KODAK / f"{it.name}.png" for it in items)


@needs_kodak
def test_kodak_limit_and_images():
    """`images` keeps the given order, `limit` takes the first N, unknown names list the valid ones."""
    assert [it.name for it in resolve_dataset(ds("kodak", limit=3), DATA)] == KODAK_NAMES[:3]
    picked = resolve_dataset(ds("kodak", images=["kodim05", "kodim01", "kodim03.png"]), DATA)
    assert [it.name for it in picked] == ["kodim05", "kodim01", "kodim03"]
    picked = resolve_dataset(ds("kodak", images=["kodim05", "kodim01", "kodim03"], limit=2), DATA)
    assert [it.name for it in picked] == ["kodim05", "kodim01"]
    with pytest.raises(DatasetError, match=r"kodim99.*valid names: kodim01, kodim02"):
        resolve_dataset(ds("kodak", images=["kodim99"]), DATA)


def test_bad_config_values():
    """Unknown dataset, bad limit and missing name are DatasetErrors with guidance."""
    with pytest.raises(DatasetError, match="valid names: div2k_valid"):
        resolve_dataset({"name": "nope"}, "/tmp")
    with pytest.raises(DatasetError, match="limit must be a positive integer"):
        resolve_dataset(ds("samples", limit=0), None)
    with pytest.raises(DatasetError, match="no 'name'"):
        resolve_dataset({}, "/tmp")


def test_select_matches_numbers_and_extensions():
    """YAML may turn 0829 into 829: integers match zero-padded numeric names."""
    assert select(["0801", "0829"], [829, "0801.png"], None, "x") == ["0829", "0801"]
    assert select(["a", "b", "c"], None, 2, "x") == ["a", "b"]


@needs_kodak
def test_kodak_load_landscape_and_portrait():
    """Kodak loads as 3x512x768 (landscape) and 3x768x512 (kodim04, portrait) without notes."""
    t1, notes1 = load_image(KODAK / "kodim01.png")
    t4, notes4 = load_image(str(KODAK / "kodim04.png"))
    assert t1.shape == (3, 512, 768) and t4.shape == (3, 768, 512)
    assert notes1 == notes4 == []
    ref = np.asarray(Image.open(KODAK / "kodim01.png"), dtype=np.float64) / 255
    assert np.abs(as_hwc(t1) - ref).max() < 1e-6


@needs_kodak
def test_flipped_byte_fails_checksum(tmp_path):
    """A copy with one byte flipped is refused with both hashes; verify=false accepts it."""
    dst = tmp_path / "kodak"
    dst.mkdir()
    data = bytearray((KODAK / "kodim01.png").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (dst / "kodim01.png").write_bytes(bytes(data))
    expected = read_checksums((KODAK / "SHA256SUMS").read_text())["kodim01.png"]
    with pytest.raises(DatasetError, match="checksum mismatch") as err:
        resolve_dataset(ds("kodak", images=["kodim01"]), tmp_path)
    assert expected in str(err.value) and sha256_file(dst / "kodim01.png") in str(err.value)
    assert str(dst / "kodim01.png") in str(err.value)
    assert len(resolve_dataset(ds("kodak", images=["kodim01"], verify=False), tmp_path)) == 1


@needs_kodak
def test_truncated_png_is_image_error(tmp_path):
    """Half a PNG raises ImageError naming the file."""
    bad = tmp_path / "trunc.png"
    bad.write_bytes((KODAK / "kodim02.png").read_bytes()[:20000])
    with pytest.raises(ImageError, match=r"trunc\.png") as err:
        load_image(bad)
    assert str(bad) in str(err.value)


def test_missing_dataset_says_where(tmp_path):
    """The message names the full directory, the files, GSBENCH_DATA and dataset.download=true."""
    with pytest.raises(DatasetError) as err:
        resolve_dataset(ds("kodak"), tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "kodak") in msg and "kodim01.png" in msg and "24 of the 24" in msg
    assert "GSBENCH_DATA" in msg and "paths.data_dir" in msg and "dataset.download=true" in msg


def test_data_root_from_env(tmp_path, monkeypatch):
    """With data_dir=None the root comes from GSBENCH_DATA; without either, a clear error."""
    with pytest.raises(DatasetError, match="GSBENCH_DATA"):
        resolve_dataset(ds("kodak"), None)
    monkeypatch.setenv("GSBENCH_DATA", str(tmp_path))
    with pytest.raises(DatasetError, match=str(tmp_path / "kodak")):
        resolve_dataset(ds("kodak"), None)


# --------------------------------------------------------------------------- DIV2K partial copies


@needs_div2k
def test_div2k_partial_copy_used_with_warning(caplog):
    """Only 2 of 100 present: used (with a warning) unless `images` asks for absent ones."""
    with caplog.at_level(logging.WARNING, logger="gsbench.data"):
        items = resolve_dataset(ds("div2k_valid_x2"), DATA)
    assert [it.name for it in items] == ["0829x2", "0844x2"]
    assert "only 2 of the 100" in caplog.text
    assert [it.name for it in resolve_dataset(ds("div2k_valid_x2", limit=1), DATA)] == ["0829x2"]
    assert [it.name for it in resolve_dataset(ds("div2k_valid_x2", images=["0844x2"]), DATA)] == ["0844x2"]
    with pytest.raises(DatasetError, match=str(DIV2K)):
        resolve_dataset(ds("div2k_valid_x2", images=["0801x2", "0829x2"]), DATA)


def test_div2k_absent_is_error(tmp_path):
    """No DIV2K file at all: the usual 'where to put them' error."""
    with pytest.raises(DatasetError, match=r"100 of the 100 .*div2k_valid"):
        resolve_dataset(ds("div2k_valid"), tmp_path)


# --------------------------------------------------------------------------- odd inputs


def test_greyscale_replicated(tmp_path):
    """L and 1-bit images become 3 equal channels, with a note."""
    grey = rand_u8((5, 7))
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    t, notes = load_image(tmp_path / "g.png")
    assert t.shape == (3, 5, 7) and torch.equal(t[0], t[2])
    assert np.allclose(as_hwc(t)[..., 1], grey / 255, atol=1e-7)
    assert any("greyscale" in n for n in notes)
    Image.fromarray(grey > 128).save(tmp_path / "b.png")
    t, notes = load_image(tmp_path / "b.png")
    assert set(np.unique(t.numpy())) <= {0.0, 1.0} and any("greyscale (1)" in n for n in notes)


def test_rgba_opaque_dropped_transparent_refused(tmp_path):
    """Fully opaque alpha is dropped with a note; any transparent pixel is refused."""
    rgba = rand_u8((4, 6, 4))
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    t, notes = load_image(tmp_path / "opaque.png")
    assert np.allclose(as_hwc(t), rgba[..., :3] / 255, atol=1e-7)
    assert any("alpha channel dropped" in n for n in notes)
    rgba[1, 2, 3] = 254
    Image.fromarray(rgba, "RGBA").save(tmp_path / "transp.png")
    with pytest.raises(ImageError, match=r"transp\.png.*transparency \(1 of 24 pixels"):
        load_image(tmp_path / "transp.png")


def test_la_opaque(tmp_path):
    """Greyscale + opaque alpha: alpha dropped and grey replicated."""
    Image.fromarray(np.dstack([rand_u8((3, 3)), np.full((3, 3), 255, np.uint8)]), "LA").save(
        tmp_path / "la.png"
    )
    t, notes = load_image(tmp_path / "la.png")
    assert t.shape == (3, 3, 3) and torch.equal(t[0], t[1])
    assert any("alpha" in n for n in notes) and any("greyscale" in n for n in notes)


def test_palette(tmp_path):
    """Palette images are expanded to RGB; palette transparency follows the alpha rule."""
    rgb = rand_u8((6, 6, 3))
    pal = Image.fromarray(rgb, "RGB").quantize(16)
    pal.save(tmp_path / "p.png")
    t, notes = load_image(tmp_path / "p.png")
    assert np.allclose(as_hwc(t), np.asarray(pal.convert("RGB")) / 255, atol=1e-7)
    assert any("palette" in n for n in notes)
    index = int(np.asarray(pal)[0, 0])
    pal.save(tmp_path / "pt.png", transparency=index)
    with pytest.raises(ImageError, match="transparency"):
        load_image(tmp_path / "pt.png")


def test_rgb_colour_key(tmp_path):
    """A tRNS colour key that matches a pixel is refused; an unused one is ignored with a note."""
    rgb = np.full((2, 2, 3), 200, np.uint8)
    Image.fromarray(rgb).save(tmp_path / "k.png", transparency=(1, 2, 3))
    assert any("colour key" in n for n in load_image(tmp_path / "k.png")[1])
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "k2.png", transparency=(1, 2, 3))
    with pytest.raises(ImageError, match="transparency"):
        load_image(tmp_path / "k2.png")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_16bit_full_precision(tmp_path, channels):
    """16-bit PNGs (grey, grey+alpha, RGB, RGBA; all row filters) keep all 16 bits."""
    arr = rand_u16((9, 11, channels), seed=channels)
    if channels in (2, 4):
        arr[..., -1] = 65535
    t, notes = load_image(write_png16(tmp_path / "d16.png", arr))
    colour = arr[..., :3] if channels >= 3 else np.repeat(arr[..., :1], 3, axis=2)
    assert np.abs(as_hwc(t) - colour / 65535).max() < 1e-7
    assert any("16-bit" in n for n in notes)


def test_png_16bit_transparent_refused(tmp_path):
    """A 16-bit RGBA PNG with one not-quite-opaque pixel is refused."""
    arr = rand_u16((3, 3, 4))
    arr[..., 3] = 65535
    arr[0, 0, 3] = 65534
    with pytest.raises(ImageError, match="transparency"):
        load_image(write_png16(tmp_path / "t16.png", arr))


def test_16bit_grey_pgm_and_tiff(tmp_path):
    """16-bit PGM (Pillow mode I) and 16-bit RGB TIFF (read with tifffile) keep full precision."""
    import tifffile

    grey = rand_u16((4, 5))
    (tmp_path / "g.pgm").write_bytes(b"P5\n5 4\n65535\n" + grey.astype(">u2").tobytes())
    t, _ = load_image(tmp_path / "g.pgm")
    assert np.abs(as_hwc(t)[..., 0] - grey / 65535).max() < 1e-7
    rgb = rand_u16((4, 5, 3), seed=3)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    t, notes = load_image(tmp_path / "c.tif")
    assert np.abs(as_hwc(t) - rgb / 65535).max() < 1e-7 and any("TIFF" in n for n in notes)


def test_float_tiff(tmp_path):
    """Float greyscale in [0, 1] is accepted; out of range is refused."""
    arr = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    Image.fromarray(arr, "F").save(tmp_path / "f.tif")
    t, _ = load_image(tmp_path / "f.tif")
    assert np.allclose(as_hwc(t)[..., 2], arr)
    Image.fromarray(arr * 2, "F").save(tmp_path / "f2.tif")
    with pytest.raises(ImageError, match="outside"):
        load_image(tmp_path / "f2.tif")


def test_cmyk_converted_with_note(tmp_path):
    """CMYK is converted by Pillow's formula with a note saying colours are approximate."""
    Image.new("CMYK", (4, 3), (0, 255, 255, 0)).save(tmp_path / "c.tif")
    t, notes = load_image(tmp_path / "c.tif")
    assert t.shape == (3, 3, 4) and np.allclose(as_hwc(t)[0, 0], [1, 0, 0])
    assert any("CMYK" in n for n in notes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, orientation):
    """EXIF orientation is applied exactly like PIL.ImageOps.exif_transpose."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rand_u8((3, 5, 3))).save(tmp_path / "o.png", exif=exif)
    t, notes = load_image(tmp_path / "o.png")
    ref = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB")) / 255
    assert np.allclose(as_hwc(t), ref, atol=1e-7)
    assert any("EXIF" in n for n in notes) == (orientation != 1)


def test_multiframe_uses_first(tmp_path):
    """Animated GIF: the first frame is used, with a note."""
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    t, notes = load_image(tmp_path / "a.gif")
    assert np.allclose(as_hwc(t)[0, 0], [1, 0, 0]) and any("2 frames" in n for n in notes)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty file"), (b"this is not an image at all" * 10, "not a readable image")],
)
def test_garbage_and_empty(tmp_path, content, match):
    """Empty and non-image files raise ImageError with the path and the reason."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    with pytest.raises(ImageError, match=match) as err:
        load_image(bad)
    assert str(bad) in str(err.value)


def test_missing_and_directory(tmp_path):
    """Missing path and directory are ImageErrors."""
    with pytest.raises(ImageError, match="file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(tmp_path)


@pytest.mark.parametrize(
    ("w", "h", "match"), [(11000, 10000, "110.0 MP > 100 MP"), (20000, 20000, "too large")]
)
def test_too_large_refused_before_decoding(tmp_path, w, h, match):
    """Huge headers (past our 100 MP limit, or Pillow's bomb limit) are refused without decoding."""
    with pytest.raises(ImageError, match=match):
        load_image(png_header_only(tmp_path / "huge.png", w, h))


def test_zero_size_and_custom_limit(tmp_path):
    """A zero-width header is refused; max_pixels can be lowered."""
    with pytest.raises(ImageError, match=r"zero\.png"):
        load_image(png_header_only(tmp_path / "zero.png", 0, 5))
    Image.new("RGB", (10, 10)).save(tmp_path / "s.png")
    with pytest.raises(ImageError, match="too large"):
        load_image(tmp_path / "s.png", max_pixels=99)


# --------------------------------------------------------------------------- folder and samples


def test_folder_dataset(tmp_path):
    """Image files only (any case of extension), no hidden files, sorted by name, stems as names."""
    for name in ("b.jpg", "a.PNG", "c.webp", ".hidden.png"):
        fmt = Image.registered_extensions()[Path(name).suffix.lower()]
        Image.new("RGB", (4, 4)).save(tmp_path / name, format=fmt)
    (tmp_path / "notes.txt").write_text("x")
    items = resolve_dataset(ds("folder", path=str(tmp_path)), None)
    assert [(it.name, it.path.name) for it in items] == [("a", "a.PNG"), ("b", "b.jpg"), ("c", "c.webp")]
    picked = resolve_dataset(ds("folder", path=tmp_path, images=["c", "a"]), None)
    assert [it.name for it in picked] == ["c", "a"]


def test_folder_errors(tmp_path):
    """No path, missing dir, empty dir and clashing stems are DatasetErrors."""
    with pytest.raises(DatasetError, match=r"dataset\.path="):
        resolve_dataset(ds("folder"), None)
    with pytest.raises(DatasetError, match="not a directory"):
        resolve_dataset(ds("folder", path=tmp_path / "nope"), None)
    with pytest.raises(DatasetError, match="no images in"):
        resolve_dataset(ds("folder", path=tmp_path), None)
    Image.new("RGB", (2, 2)).save(tmp_path / "x.png")
    Image.new("RGB", (2, 2)).save(tmp_path / "x.jpg")
    with pytest.raises(DatasetError, match="share the name 'x'"):
        resolve_dataset(ds("folder", path=tmp_path), None)


def test_samples_are_real_colour_photos():
    """The bundled scikit-image photos resolve without a data root and load as RGB."""
    items = resolve_dataset(ds("samples"), None)
    assert [it.name for it in items] == ["astronaut", "chelsea", "coffee"]
    shapes = {}
    for it in items:
        t, notes = load_image(it.path)
        assert notes == [] and float(t.std()) > 0.1
        shapes[it.name] = tuple(t.shape)
    assert shapes == {"astronaut": (3, 512, 512), "chelsea": (3, 300, 451), "coffee": (3, 400, 600)}


def test_dataset_yaml_configs_compose():
    """Each configs/dataset/*.yaml composes under the `dataset` package with the documented keys."""
    from hydra import compose, initialize_config_dir

    keys = {"name", "subdir", "limit", "images", "path", "download", "verify"}
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        for name in ("kodak", "div2k_valid", "div2k_valid_x2", "folder", "samples"):
            cfg = compose(overrides=[f"+dataset={name}"])
            assert cfg.dataset.name == name and keys <= set(cfg.dataset)
        cfg = compose(overrides=["+dataset=samples", "dataset.limit=1"])
        assert [it.name for it in resolve_dataset(cfg.dataset, None)] == ["astronaut"]


# --------------------------------------------------------------------------- downloads (loopback only)


@pytest.fixture
def http_dir(tmp_path, monkeypatch):
    """A loopback HTTP server in a thread serving ``tmp_path/www``; yields (dir, base URL)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            """No request log on stderr."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def test_fetch_good_bad_and_404(http_dir, tmp_path):
    """Good checksum: file written; bad: refused with both hashes and nothing left; 404: clear error."""
    www, url = http_dir
    payload = os.urandom(3000)
    (www / "f.bin").write_bytes(payload)
    good = __import__("hashlib").sha256(payload).hexdigest()
    out = tmp_path / "dl"
    assert fetch(url + "f.bin", out / "f.bin", sha256=good).read_bytes() == payload
    with pytest.raises(DownloadError, match=f"expected sha256 {'0' * 64}, got {good}"):
        fetch(url + "f.bin", out / "g.bin", sha256="0" * 64)
    assert sorted(p.name for p in out.iterdir()) == ["f.bin"]
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(url + "missing.bin", out / "m.bin")
    assert sorted(p.name for p in out.iterdir()) == ["f.bin"]


@needs_kodak
def test_kodak_download_verified(http_dir, tmp_path):
    """download=true fetches missing Kodak files from the (loopback) URL and verifies them."""
    www, url = http_dir
    for n in ("kodim01", "kodim02"):
        shutil.copy(KODAK / f"{n}.png", www)
    (www / "kodim03.png").write_bytes(b"not the real kodim03")
    data = tmp_path / "data"
    cfg = ds("kodak", images=["kodim02", "kodim01"], download=True, url=url)
    assert [it.name for it in resolve_dataset(cfg, data)] == ["kodim02", "kodim01"]
    assert sha256_file(data / "kodak" / "kodim01.png") == sha256_file(KODAK / "kodim01.png")
    with pytest.raises(DownloadError, match=r"checksum mismatch.*expected sha256"):
        resolve_dataset(ds("kodak", images=["kodim03"], download=True, url=url), data)
    assert sorted(p.name for p in (data / "kodak").iterdir()) == ["kodim01.png", "kodim02.png"]


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    """A zip with the given member names and contents."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return path


def png_bytes(color: tuple[int, int, int]) -> bytes:
    """A small RGB PNG as bytes."""
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), color).save(buf, format="PNG")
    return buf.getvalue()


def test_div2k_zip_download(http_dir, tmp_path):
    """The zip is fetched, only DIV2K image members are extracted (flattened), the zip is removed."""
    www, url = http_dir
    inner = "DIV2K_valid_LR_bicubic/X2/"
    members = {inner + "0801x2.png": png_bytes((1, 2, 3)), inner + "0802x2.png": png_bytes((4, 5, 6))}
    members["DIV2K_valid_LR_bicubic/readme.txt"] = b"hello"
    if (DIV2K / "0829x2.png").is_file():
        members[inner + "0829x2.png"] = (DIV2K / "0829x2.png").read_bytes()
    make_zip(www / "x2.zip", members)
    data = tmp_path / "data"
    cfg = ds("div2k_valid_x2", images=["0802x2", "0801x2"], download=True, url=url + "x2.zip")
    items = resolve_dataset(cfg, data)
    assert [it.name for it in items] == ["0802x2", "0801x2"]
    present = sorted(p.name for p in (data / "div2k_valid_x2").iterdir())
    assert present == sorted(Path(m).name for m in members if m.endswith(".png"))
    assert load_image(items[1].path)[0][:, 0, 0].mul(255).round().tolist() == [1, 2, 3]


def test_div2k_zip_bad_checksum_refused(http_dir, tmp_path):
    """A zip whose 0829x2.png differs from the known sha256 is refused and leaves no file behind."""
    www, url = http_dir
    make_zip(www / "x2.zip", {"DIV2K_valid_LR_bicubic/X2/0829x2.png": png_bytes((9, 9, 9))})
    data = tmp_path / "data"
    cfg = ds("div2k_valid_x2", images=["0829x2"], download=True, url=url + "x2.zip")
    with pytest.raises(DownloadError, match=r"checksum mismatch for DIV2K_valid_LR_bicubic/X2/0829x2\.png"):
        resolve_dataset(cfg, data)
    assert list((data / "div2k_valid_x2").iterdir()) == []


def test_download_unreachable_is_clear(tmp_path):
    """An unreachable URL gives a DownloadError telling where to put the file by hand."""
    with pytest.raises(DownloadError, match=r"cannot download .* put it at"):
        resolve_dataset(ds("kodak", images=["kodim01"], download=True), tmp_path)
