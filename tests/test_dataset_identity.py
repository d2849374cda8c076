"""Datasets are identified by what they hold: folder names carry a content hash, and the report never
averages two different folders as one dataset (older records without the hash included)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from gsbench.data import resolve_dataset
from gsbench.data.identity import dataset_identity
from gsbench.report import records_frame, summarize
from gsbench.report.aggregate import dataset_key
from helpers import cli


def _folder(root: Path, name: str, n: int, seed: int = 0) -> Path:
    d = root / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    return d


def _identity(cfg: dict) -> dict:
    cfg = {"name": "folder", "limit": None, "images": None, **cfg}
    return dataset_identity(cfg, resolve_dataset(cfg, None))


def test_folder_name_has_label_and_content_hash(tmp_path):
    one, three = _folder(tmp_path, "one", 1), _folder(tmp_path, "three", 3, seed=1)
    a, b = _identity({"path": str(one)}), _identity({"path": str(three)})
    assert a["dataset"].startswith("folder-one-") and b["dataset"].startswith("folder-three-")
    assert a["dataset_hash"] != b["dataset_hash"] and a["dataset_path"] == str(one)
    assert b["dataset_files"] == 3 and set(b["source_sha256"]) == {"im0", "im1", "im2"}
    # selecting fewer images of one folder is the same dataset; a short label replaces the folder name
    assert _identity({"path": str(three), "limit": 1})["dataset"] == b["dataset"]
    labelled = _identity({"path": str(three), "label": "my set"})["dataset"]
    assert labelled == f"folder-my_set-{b['dataset'][-8:]}"
    # the same files elsewhere are the same content; a changed file is a new dataset
    copy = tmp_path / "elsewhere" / "three"
    shutil.copytree(three, copy)
    assert _identity({"path": str(copy)})["dataset_hash"] == b["dataset_hash"]
    Image.new("RGB", (8, 8)).save(copy / "im1.png")
    assert _identity({"path": str(copy)})["dataset_hash"] != b["dataset_hash"]


def test_named_dataset_keeps_its_name(tmp_path):
    d = _folder(tmp_path, "kodak", 1)
    ident = dataset_identity({"name": "kodak"}, resolve_dataset({"name": "folder", "path": str(d)}, None))
    assert ident["dataset"] == "kodak" and len(ident["dataset_hash"]) == 64 and ident["dataset_path"] is None


def _rec(dataset: str, image: str, path: str, **extra) -> dict:
    return {
        "record_version": 1, "status": "ok", "method": "jpeg", "dataset": dataset, "image": image,
        "budget": 75, "seed": 1, "task": "compress", "config_hash": "h", "metrics": {"psnr": 30.0},
        "config": {"dataset": {"name": "folder", "path": path}}, "bpp": 1.0, **extra,
    }  # fmt: skip


def test_report_never_pools_two_folders():
    new = [
        _rec("folder-a-11111111", "x", "/data/a", dataset_hash="1" * 64),
        _rec("folder-b-22222222", "x", "/data/b", dataset_hash="2" * 64),
        _rec("folder-b-22222222", "y", "/data/b", dataset_hash="2" * 64),
    ]
    old = [_rec("folder", "x", "/old/a"), _rec("folder", "x", "/old/b"), _rec("folder", "y", "/old/b")]
    summary = summarize(records_frame(new + old))
    assert len(summary) == 4 and "folder" not in set(summary["dataset"])
    assert sorted(summary["n_images"]) == [1, 1, 2, 2]
    # an old record is named after its directory, and the same directory always gets the same name
    assert dataset_key(old[1]) == dataset_key(old[2]) != dataset_key(old[0])
    assert dataset_key(old[0]).startswith("folder-a-nohash-")
    assert dataset_key({"dataset": "kodak"}) == "kodak"


def test_compress_on_two_folders_prints_bpp_and_reports_two_datasets(tmp_path):
    """End to end: JPEG on a 1-image and a 3-image folder; bpp in the print and results.csv; two datasets."""
    from gsbench.report import build_report

    for name, n in (("one", 1), ("three", 3)):
        folder = _folder(tmp_path, name, n, seed=n)
        res = cli(
            "method=jpeg", "task=compress", "dataset=folder", f"dataset.path={folder}",
            "metrics.names=[psnr]", "progress=false", "device=cpu",
            f"hydra.run.dir={tmp_path / 'runs' / name}",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        lines = res.stdout.splitlines()
        header = next(line for line in lines if line.split()[:2] == ["image", "status"]).split()
        assert {"bpp", "bitstream_bytes", "decode_fps"} <= set(header), res.stdout
        csv = (tmp_path / "runs" / name / "results.csv").read_text().splitlines()[0].split(",")
        assert {"bpp", "bpp_payload", "bitstream_bytes", "encode_seconds", "decode_seconds"} <= set(csv)
    build_report(tmp_path / "runs", tmp_path / "report", plots=False)
    summary = (tmp_path / "report" / "summary.csv").read_text()
    rows = [line for line in summary.splitlines()[1:] if line.startswith("jpeg")]
    assert len(rows) == 2 and "folder-one-" in summary and "folder-three-" in summary


def test_report_warns_when_one_image_name_scored_two_files(tmp_path):
    from gsbench.report import build_report
    from gsbench.report.aggregate import content_conflicts

    recs = [
        _rec("kodak", "kodim01", "", source_sha256="a" * 64, config_hash="h1"),
        _rec("kodak", "kodim01", "", source_sha256="b" * 64, config_hash="h2"),
        _rec("kodak", "kodim02", "", source_sha256="c" * 64),
        _rec("kodak", "kodim03", ""),  # an older record without the hash: nothing to compare
    ]
    assert content_conflicts(records_frame(recs)) == ["kodak/kodim01"]
    for i, rec in enumerate(recs):
        path = tmp_path / "res" / f"r{i}" / f"{rec['image']}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(rec))
    rep = build_report(tmp_path / "res", tmp_path / "out", plots=False)
    assert any("WARNING" in m and "kodak/kodim01" in m for m in rep.messages)
