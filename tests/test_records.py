"""Records: atomic writes, resume decisions, the summary table and the config hash."""

from __future__ import annotations

import json

from gsbench.runner.provenance import config_hash, git_commit, versions
from gsbench.runner.records import read_record, should_skip, summary_table, write_json_atomic


def test_atomic_write_and_nan_becomes_null(tmp_path):
    path = tmp_path / "a" / "r.json"
    write_json_atomic(path, {"x": float("nan"), "y": [1.0, float("inf")], "status": "ok"})
    assert json.loads(path.read_text()) == {"x": None, "y": [1.0, None], "status": "ok"}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary left behind


def test_resume_decisions(tmp_path):
    ok, bad, broken = tmp_path / "ok.json", tmp_path / "bad.json", tmp_path / "broken.json"
    write_json_atomic(ok, {"status": "ok"})
    write_json_atomic(bad, {"status": "failed"})
    broken.write_text("{half a rec")  # e.g. written by another tool: redone, not trusted
    assert should_skip(ok, resume=True, retry_failed=True)
    assert not should_skip(bad, resume=True, retry_failed=True)
    assert should_skip(bad, resume=True, retry_failed=False)
    assert not should_skip(broken, resume=True, retry_failed=True) and read_record(broken) is None
    assert not should_skip(ok, resume=False, retry_failed=True)
    assert not should_skip(tmp_path / "missing.json", resume=True, retry_failed=True)


def test_summary_table_means_over_ok_images_only():
    recs = [
        {"image": "a", "status": "ok", "num_gaussians": 10, "metrics": {"psnr": 30.0}, "fit_seconds": 1.0},
        {"image": "b", "status": "ok", "num_gaussians": 10, "metrics": {"psnr": 20.0}, "fit_seconds": 3.0},
        {"image": "c", "status": "failed", "error": "ImageError: x"},
    ]
    df = summary_table(recs)
    mean = df.iloc[-1]
    assert mean["image"] == "mean (2 ok)" and mean["psnr"] == 25.0 and mean["fit_seconds"] == 2.0
    assert list(df["image"][:3]) == ["a", "b", "c"]


def test_config_hash_ignores_where_not_what():
    base = {
        "method": {"name": "gi"},
        "gaussians": 10,
        "paths": {"data_dir": "/a"},
        "device": "cpu",
        "dataset": {"name": "kodak", "limit": 1},
    }
    moved = dict(base, paths={"data_dir": "/b"}, device="cuda", dataset={"name": "kodak", "limit": 5})
    assert config_hash(base) == config_hash(moved)
    assert config_hash(base) != config_hash(dict(base, gaussians=11))


def test_provenance_has_commit_and_versions():
    assert set(git_commit()) == {"commit", "dirty"}
    v = versions()
    assert v["torch"] and v["python"]
