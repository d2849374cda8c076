"""Records: atomic writes, resume decisions, the summary table and the config hash."""

from __future__ import annotations

import json

from gsbench.records import (
    RECORD_VERSION,
    load_raw,
    load_records,
    read_record,
    should_skip,
    write_json_atomic,
)
from gsbench.runner.provenance import config_hash, git_commit, versions
from gsbench.runner.summary import summary_table


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


def _compress_record(image: str, status: str = "ok") -> dict:
    return {
        "image": image,
        "status": status,
        "task": "compress",
        "num_gaussians": 0,
        "metrics": {"psnr": 30.0, "ms_ssim": 0.95},
        "bpp": 0.5,
        "bpp_payload": 0.5,
        "bitstream_bytes": 24576,
        "encode_seconds": 0.01,
        "fit_seconds": 0.01,
        "decode_seconds": 0.002,
        "decode": {"decode_fps": 450.0},
        "render": None,
    }


def test_compress_table_carries_rate_and_codec_timings(tmp_path):
    from gsbench.runner.summary import format_table, write_results

    df = summary_table([_compress_record("a"), _compress_record("b")])
    for col in ("bpp", "bpp_payload", "bitstream_bytes", "encode_seconds", "decode_seconds", "decode_fps"):
        assert col in df.columns and df[col].iloc[-1] == df[col].iloc[0]
    assert df["render_fps"].isna().all()  # a pixel codec renders nothing
    header = (write_results(df, tmp_path)).read_text().splitlines()[0].split(",")
    assert header[:4] == ["image", "status", "num_gaussians", "psnr"] and "bpp" in header
    printed = format_table(df, "compress")
    first = printed.splitlines()[0].split()
    assert "bpp" in first and "bitstream_bytes" in first and "decode_fps" in first
    assert "render_fps" not in first  # empty for every row: not printed
    assert "24576" in printed and "24576.0" not in printed


def test_represent_table_has_render_fps_and_no_rate():
    rec = {"image": "a", "status": "ok", "task": "represent", "num_gaussians": 10, "metrics": {"psnr": 1.0},
           "fit_seconds": 2.0, "render": {"render_fps": 100.0}}
    df = summary_table([rec])
    assert "render_fps" in df.columns and "bpp" not in df.columns and df["render_fps"].iloc[0] == 100.0


def test_readers_keep_records_of_this_version_only(tmp_path):
    """Other JSON (a config, a list, another schema version, a broken file) below a root is not a record."""
    write_json_atomic(tmp_path / "a" / "x.json", {"record_version": RECORD_VERSION, "image": "x"})
    write_json_atomic(tmp_path / "b" / "old.json", {"record_version": RECORD_VERSION + 1, "image": "old"})
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    assert [p.name for p, _ in load_raw(tmp_path)] == ["x.json"]
    assert load_records(tmp_path) == [{"record_version": RECORD_VERSION, "image": "x"}]
