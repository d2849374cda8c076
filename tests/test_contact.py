"""Contact sheets: which record stands for each method, the detail crop, and the figure from records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from gsbench.report import load_frame
from gsbench.report.contact import contact_sheets, detail_crop, pick_records


def _write(
    root: Path, method: str, quality: int, bpp: float, psnr: float, ref: Path, pixels: np.ndarray
) -> None:
    d = root / "records" / method / "kodak" / f"g{quality}_s1_h{quality}"
    d.mkdir(parents=True)
    Image.fromarray(pixels).save(d / "im.png")
    rec = {
        "record_version": 1, "status": "ok", "method": method, "dataset": "kodak", "image": "im",
        "budget": quality, "budget_name": "quality", "seed": 1, "task": "compress",
        "config_hash": f"h{quality}",
        "config": {"method": {"name": method}}, "metrics": {"psnr": psnr}, "bpp": bpp, "num_gaussians": 0,
        "source": str(ref), "reconstruction": "im.png",
    }  # fmt: skip
    (d / "im.json").write_text(json.dumps(rec))


def test_pick_records_lowest_rate_every_method_reaches():
    rows = pd.DataFrame({
        "method": ["jpeg"] * 3 + ["gi"] * 2, "setting": "", "bpp": [0.2, 0.8, 2.0, 0.7, 1.5],
        "num_gaussians": 0, "psnr": 30.0,
    })  # fmt: skip
    chosen, target = pick_records(rows, "compress")
    assert target == 0.7  # gi cannot go below 0.7 bpp: the comparison is made there
    assert sorted(chosen["bpp"]) == [0.7, 0.8]
    chosen, target = pick_records(rows, "compress", target=2.0)
    assert sorted(chosen["bpp"]) == [1.5, 2.0]


def test_detail_crop_finds_the_textured_corner():
    img = np.full((64, 96, 3), 128, dtype=np.uint8)
    img[40:64, 70:96] = np.random.default_rng(0).integers(0, 255, (24, 26, 3))
    top, left, side = detail_crop(img, 0.25)
    assert side == 16 and top >= 32 and left >= 60


def test_contact_sheet_from_records(tmp_path):
    rng = np.random.default_rng(1)
    ref_pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ref = tmp_path / "ref.png"
    Image.fromarray(ref_pixels).save(ref)
    for method, q, bpp, p in (("jpeg", 10, 0.3, 25.0), ("jpeg", 50, 1.0, 31.0), ("webp", 20, 0.5, 28.0)):
        _write(tmp_path / "res", method, q, bpp, p, ref, ref_pixels // 2)
    paths = contact_sheets(load_frame(tmp_path / "res"), tmp_path / "out")
    assert [p.name for p in paths] == ["contact_kodak_im_compress.png"]
    with Image.open(paths[0]) as im:
        assert im.width > im.height  # reference + 2 methods side by side, a crop row below
