"""Reports (gsbench.report) on fabricated records: aggregation, BD-rate, plots, paper tables, CompressAI
JSON, the command line and the reproduce guard. CPU only, no fits."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from gsbench.report import (
    bd,
    bd_table,
    build_report,
    cli,
    compressai_curves,
    load_frame,
    reproduce,
    summarize,
)
from gsbench.report.aggregate import curve_points
from gsbench.report.paper import load_experiment, paper_table
from gsbench.report.tables import speed_table

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
H, W = 512, 768
GPU = {"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.1}


def make_record(
    method: str,
    image: str,
    budget: int,
    *,
    dataset: str = "kodak",
    task: str = "represent",
    status: str = "ok",
    seed: int = 1,
    psnr: float | None = 30.0,
    bpp: float | None = None,
    iterations: int | None = 50000,
    method_cfg: dict[str, Any] | None = None,
    device: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A record as the runner writes it (docs/records.md), with only what the reports read."""
    cfg = {"method": {"name": method, **(method_cfg or {})}, "render": {"backend": "auto"}, "seed": seed}
    if iterations is not None:
        cfg["train"] = {"iterations": iterations}
    rec: dict[str, Any] = {
        "record_version": 1,
        "status": status,
        "method": method,
        "dataset": dataset,
        "image": image,
        "budget": budget,
        "budget_name": "quality" if method == "jpeg" else "gaussians",
        "seed": seed,
        "task": task,
        "config": cfg,
        "config_hash": f"h{abs(hash(json.dumps(cfg, sort_keys=True))) % 10**8}",
        "metrics": {
            "psnr": psnr,
            "psnr_8bit": None if psnr is None else psnr - 0.05,
            "ms_ssim": 0.95,
            "ms_ssim_db": 13.0,
            "lpips": 0.1,
            "ssim": 0.9,
            "flip": 0.05,
        },
        "num_gaussians": budget,
        "num_params": 8 * budget,
        "fit_seconds": 10.0,
        "render": {"render_fps": 2000.0, "render_seconds_median": 0.0005},
        "device": device or GPU,
        "peak_memory_mib": 400.0,
        "height": H,
        "width": W,
        "git": {"commit": "abcdef1234567890", "dirty": False},
        "finished_at": 1767225600.0,  # epoch seconds, as the runner writes it
    }
    if status != "ok":
        rec["metrics"] = {}
        rec["error"] = "RuntimeError: boom"
    if task == "compress":
        rec.update(
            bpp=bpp,
            bpp_payload=None if bpp is None else bpp * 0.98,
            bitstream_bytes=None if bpp is None else int(bpp * H * W / 8),
            bitstream=f"{image}.gsb",
            encode_seconds=20.0,
            decode_seconds=0.01,
            decode={"decode_fps": 1500.0, "decode_seconds_median": 1 / 1500},
        )
    rec.update(extra)
    return rec


def write_records(root: Path, records: list[dict[str, Any]]) -> Path:
    """Lay records out like a job: records/<method>/<dataset>/g<budget>_s<seed>_<hash>/<image>.json."""
    for rec in records:
        d = (
            root
            / "records"
            / rec["method"]
            / rec["dataset"]
            / f"g{rec['budget']}_s{rec['seed']}_{rec['config_hash']}"
        )
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{rec['image']}.json").write_text(json.dumps(rec))
    return root


def rd_records(
    method: str, points: list[tuple[int, float, float]], images=("kodim01", "kodim02")
) -> list[dict]:
    """Compress records of one method: (budget, bpp, psnr) per point; the two images straddle the mean
    by +-10% bpp and +-0.5 dB so the means are exactly the given point."""
    out = []
    for budget, rate, psnr in points:
        for k, image in enumerate(images):
            sign = 1 if k % 2 == 0 else -1
            out.append(
                make_record(
                    method,
                    image,
                    budget,
                    task="compress",
                    bpp=rate * (1 + 0.1 * sign),
                    psnr=psnr + 0.5 * sign,
                    iterations=None if method == "jpeg" else 50000,
                )
            )
    return out


RATES = [0.15, 0.3, 0.6, 1.2, 2.4]
PSNRS = [24.0, 27.0, 30.0, 33.0, 36.0]


# ---- aggregation ----------------------------------------------------------------------------------------


def test_aggregate_mean_std_and_failed_not_averaged(tmp_path):
    recs = [make_record("gi", f"kodim0{i}", 10000, psnr=p) for i, p in ((1, 30.0), (2, 31.0), (3, 32.0))]
    recs.append(make_record("gi", "kodim04", 10000, status="failed", psnr=None))
    recs.append(make_record("gi", "kodim01", 5000, psnr=28.0))
    write_records(tmp_path, recs)
    (tmp_path / "not_a_record.json").write_text('{"name": "x"}')  # other JSON is ignored
    df = load_frame(tmp_path)
    assert len(df) == 5
    s = summarize(df).set_index("budget")
    row = s.loc[10000]
    assert (row["n_ok"], row["n_failed"], row["n_images"], row["n_records"]) == (3, 1, 3, 4)
    assert row["psnr_mean"] == pytest.approx(31.0)
    assert row["psnr_std"] == pytest.approx(1.0)  # sample std of 30, 31, 32
    assert math.isnan(s.loc[5000, "psnr_std"])  # one image: no std


def test_tidy_table_written_as_csv_and_parquet(tmp_path):
    write_records(tmp_path / "res", rd_records("gi", [(1000, 0.2, 25.0)]))
    rep = build_report(tmp_path / "res", tmp_path / "out", plots=False)
    back = pd.read_parquet(tmp_path / "out" / "records.parquet")
    csv = pd.read_csv(tmp_path / "out" / "records.csv")
    assert len(back) == len(csv) == rep.n_records == 2
    assert {"psnr", "bpp", "decode_fps", "device_name", "iterations", "record_path"} <= set(back.columns)


def test_duplicate_records_counted_once(tmp_path):
    rec = make_record("gi", "kodim01", 10000)
    write_records(tmp_path / "a", [rec])
    write_records(tmp_path / "b", [rec])  # the same job copied elsewhere
    # a failed earlier attempt, then a later ok one (ISO time: older records may carry one)
    failed = make_record("gi", "kodim02", 10000, status="failed", finished_at="2026-02-01T00:00:00")
    later = make_record("gi", "kodim02", 10000, psnr=33.0, finished_at=1800000000.0)
    write_records(tmp_path / "c", [failed])
    write_records(tmp_path / "d", [later])
    df = load_frame(tmp_path)
    assert len(df) == 2
    assert df.set_index("image").loc["kodim02", "status"] == "ok"


def test_setting_separates_variants_but_not_budget_keys(tmp_path):
    recs = [
        make_record("image_gs", "kodim01", 10000, method_cfg={"topk_norm": True}),
        make_record("image_gs", "kodim01", 10000, method_cfg={"topk_norm": False}),
        # a codec's quality changes with its budget only: one curve, not one line per point
        make_record("jpeg", "kodim01", 10, task="compress", bpp=0.3, method_cfg={"quality": 10}),
        make_record("jpeg", "kodim01", 50, task="compress", bpp=0.9, method_cfg={"quality": 50}),
    ]
    df = load_frame(write_records(tmp_path, recs))
    assert set(df[df.method == "image_gs"]["setting"]) == {"method.topk_norm=true", "method.topk_norm=false"}
    assert set(df[df.method == "jpeg"]["setting"]) == {""}


def test_curve_points_are_means_of_per_image_values(tmp_path):
    df = load_frame(
        write_records(tmp_path, rd_records("gi", list(zip([1, 2], RATES[:2], PSNRS[:2], strict=True))))
    )
    pts = curve_points(df, "bpp", "psnr", task="compress")
    assert pts["bpp"].tolist() == pytest.approx(RATES[:2])
    assert pts["psnr"].tolist() == pytest.approx(PSNRS[:2])
    assert pts["n"].tolist() == [2, 2]


# ---- BD-rate ----------------------------------------------------------------------------------------


def test_bd_identical_curves_are_zero():
    r = bd(RATES, PSNRS, RATES, PSNRS)
    for m in ("cubic", "pchip", "akima"):
        assert r.bd_rate[m] == pytest.approx(0.0, abs=1e-9)
        assert r.bd_dist[m] == pytest.approx(0.0, abs=1e-9)
    assert r.overlap_frac == pytest.approx(1.0)
    assert r.warnings == []


def test_bd_half_rate_is_minus_50_percent():
    r = bd(RATES, PSNRS, [x / 2 for x in RATES], PSNRS)
    for m in ("cubic", "pchip", "akima"):
        assert r.bd_rate[m] == pytest.approx(-50.0, abs=1e-6)


def test_bd_psnr_of_a_curve_one_db_up_is_plus_one():
    r = bd(RATES, PSNRS, RATES, [p + 1 for p in PSNRS])
    for m in ("cubic", "pchip", "akima"):
        assert r.bd_dist[m] == pytest.approx(1.0, abs=1e-6)


def test_bd_low_overlap_warns():
    test_psnr = [34.0, 36.0, 38.0, 40.0, 42.0]  # overlaps the anchor's 24-36 dB over 2 dB: 17%
    r = bd(RATES, PSNRS, RATES, test_psnr)
    assert r.overlap_frac == pytest.approx(2 / 12)
    assert (r.overlap_lo, r.overlap_hi) == (34.0, 36.0)
    assert any("low overlap" in w for w in r.warnings)
    assert not math.isnan(r.bd_rate["pchip"])  # given, but flagged


def test_bd_disjoint_curves_are_undefined():
    r = bd(RATES, PSNRS, RATES, [p + 20 for p in PSNRS])
    assert all(math.isnan(v) for v in r.bd_rate.values())
    assert any("do not overlap" in w for w in r.warnings)


def test_bd_fewer_than_four_points_leaves_out_cubic():
    r = bd(RATES[:3], PSNRS[:3], [x / 2 for x in RATES[:3]], PSNRS[:3])
    assert math.isnan(r.bd_rate["cubic"])
    assert r.bd_rate["pchip"] == pytest.approx(-50.0, abs=1e-6)
    assert r.bd_rate["akima"] == pytest.approx(-50.0, abs=1e-6)
    assert any("fewer than 4 points" in w for w in r.warnings)
    one = bd(RATES[:1], PSNRS[:1], RATES, PSNRS)
    assert all(math.isnan(v) for v in one.bd_rate.values())
    assert any(">= 2 points" in w for w in one.warnings)


def test_bd_table_from_records(tmp_path):
    anchor = list(zip([10, 20, 30, 40], RATES[:4], PSNRS[:4], strict=True))
    test = [(b, r / 2, p) for b, r, p in zip([1, 2, 3, 4], RATES[:4], PSNRS[:4], strict=True)]
    df = load_frame(write_records(tmp_path, rd_records("jpeg", anchor) + rd_records("gi", test)))
    table = bd_table(df, "jpeg", metrics=("psnr",))
    row = table.set_index("method").loc["gi"]
    # per-image bpp straddles the point by +-10%, so the mean bpp is exactly half the anchor's
    assert row["bd_rate_pchip"] == pytest.approx(-50.0, abs=1e-6)
    assert row["bd_dist_pchip"] > 0
    assert (row["n_anchor"], row["n_test"]) == (4, 4)
    assert row["warnings"] == ""
    # an unfinished sweep: the last anchor point averages one image only
    partial = df[~((df["method"] == "jpeg") & (df["budget"] == 40) & (df["image"] == "kodim02"))]
    assert "points average 1–2 images" in bd_table(partial, "jpeg", metrics=("psnr",))["warnings"].iloc[0]
    missing = bd_table(df, "webp", metrics=("psnr",))
    assert "no psnr points" in missing["warnings"].iloc[0]


# ---- the whole report: plots, speed, CompressAI, paper tables --------------------------------------------


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    recs = rd_records("jpeg", list(zip([10, 20, 30, 40, 50], RATES, PSNRS, strict=True)))
    recs += rd_records("gi", [(b, r / 2, p) for b, r, p in zip([1, 2, 3, 4, 5], RATES, PSNRS, strict=True)])
    for budget, p in ((5000, 29.0), (10000, 32.0)):
        for i, image in enumerate(("kodim01", "kodim02", "kodim03")):
            recs.append(make_record("gi", image, budget, psnr=p + i - 1))
    recs.append(make_record("gi", "kodim04", 10000, status="failed", psnr=None))
    write_records(root, recs)
    out = root / "report"
    status = cli.main([str(root), "--out", str(out), "--experiment", str(EXPERIMENTS)])
    assert status == 0
    return out


def test_report_writes_every_table(report_dir):
    for name in (
        "records.csv",
        "records.parquet",
        "summary.csv",
        "summary.md",
        "speed.csv",
        "speed.md",
        "bd_jpeg.csv",
        "bd_jpeg.md",
        "paper_vs_ours.md",
        "paper/gipp_table1.md",
        "paper/gipp_codec.csv",
    ):
        assert (report_dir / name).stat().st_size > 0, name
    assert "BD-rate pchip" in (report_dir / "bd_jpeg.md").read_text()


def test_plots_png_and_svg(report_dir):
    plots = report_dir / "plots"
    for stem in (
        "rd_kodak_psnr",
        "rd_kodak_ms_ssim_db",
        "rd_kodak_lpips",
        "represent_kodak_psnr_vs_num_gaussians",
        "represent_kodak_psnr_vs_num_params",
    ):
        png, svg = plots / f"{stem}.png", plots / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", stem
        assert svg.stat().st_size > 1000 and b"<svg" in svg.read_bytes()[:1000], stem


def test_speed_table_medians_and_device(tmp_path):
    recs = [
        make_record("gi", f"kodim0{i}", 10000, render={"render_fps": f})
        for i, f in ((1, 100.0), (2, 200.0), (3, 900.0))
    ]
    write_records(tmp_path / "gpu", recs)
    cpu = make_record(
        "gi", "kodim01", 10000, device={"type": "cpu", "name": "x86_64"}, render={"render_fps": 5.0}
    )
    write_records(tmp_path / "cpu", [cpu])  # the same image timed on another machine
    t = speed_table(load_frame(tmp_path)).set_index("device_name")
    assert t.loc["NVIDIA H100 80GB HBM3", "render_fps"] == 200.0  # median, not mean
    assert t.loc["x86_64", "render_fps"] == 5.0  # one device per row
    assert t.loc["NVIDIA H100 80GB HBM3", "peak_memory_mib"] == 400.0


def test_compressai_json(report_dir):
    path = report_dir / "compressai" / "kodak" / "gsbench-gi.json"
    data = json.loads(path.read_text())
    assert set(data) == {"name", "description", "results"}
    res = data["results"]
    assert {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"} <= set(res)
    assert res["bpp"] == pytest.approx([r / 2 for r in RATES]) and res["bpp"] == sorted(res["bpp"])
    assert res["psnr-rgb"] == pytest.approx(PSNRS)
    assert len(res["ms-ssim-rgb"]) == len(res["bpp"]) and 0 < res["ms-ssim-rgb"][0] <= 1
    assert "gi" in data["name"] and "kodak" in data["description"]


def test_compressai_uses_payload_rate_when_asked(tmp_path):
    df = load_frame(write_records(tmp_path, rd_records("gi", [(1, 0.5, 30.0)])))
    (curve,) = compressai_curves(df, rate="bpp_payload")
    assert curve["results"]["bpp"] == pytest.approx([0.49])


def test_paper_table_matches_published_rows(report_dir):
    table = pd.read_csv(report_dir / "paper" / "gipp_table1.csv", keep_default_na=False)
    gi = table[(table["method"] == "gi") & (table["metric"] == "psnr")].iloc[0]
    assert gi["paper"] == 32.48
    assert float(gi["ours"]) == pytest.approx(32.0)  # failed kodim04 not averaged
    assert float(gi["ours − paper"]) == pytest.approx(32.0 - 32.48)
    assert int(gi["n images"]) == 3
    assert gi["dataset match"] == "yes" and gi["iterations"] == "yes (50000)" and gi["GPU"].startswith("yes")
    assert gi["note"].startswith("subset: 3 of 24 images (")  # the paper averages all 24
    lig = table[table["method"] == "lig"]
    assert set(lig["ours"]) == {"not run"}


def test_paper_rd_rows_interpolate_on_our_curve(tmp_path):
    df = load_frame(write_records(tmp_path, rd_records("jpeg", [(10, 0.1, 25.0), (50, 0.4, 31.0)])))
    exp = {
        "title": "t",
        "paper": {},
        "sweep": ["x"],
        "setting": {"dataset": "kodak"},
        "stem": "t",
        "results": [
            {
                "method": "jpeg",
                "dataset": "kodak",
                "task": "compress",
                "bpp": 0.2,
                "metric": "psnr",
                "value": 27.0,
            },
            {
                "method": "jpeg",
                "dataset": "kodak",
                "task": "compress",
                "bpp": 1.0,
                "metric": "psnr",
                "value": 33.0,
            },
            {
                "method": "jpeg",
                "dataset": "kodak",
                "task": "compress",
                "bpp": 0.2,
                "metric": "decode_fps",
                "value": 300.0,
            },
        ],
    }
    t = paper_table(df, exp)
    # linear in log bpp: 0.2 lies half-way between 0.1 and 0.4
    assert t["ours"][0] == pytest.approx(28.0)
    assert "interpolated" in t["note"][0]
    assert t["ours"][1] == pytest.approx(31.0) and "outside our range" in t["note"][1]
    assert t["ours"][2] == pytest.approx(1500.0) and "nearest point" in t["note"][2]
    assert t["iterations"][0] == "n/a"


def test_paper_variants_and_settings(tmp_path):
    recs = []
    for cfg, psnr in (
        ({"topk_norm": True, "init": "saliency", "color_init": True}, 31.0),
        ({"topk_norm": False, "init": "saliency", "color_init": True}, 29.0),
        ({"topk_norm": True, "init": "random", "color_init": False}, 29.5),
    ):
        recs += [
            make_record(
                "image_gs",
                im,
                10000,
                psnr=psnr,
                method_cfg=cfg,
                iterations=5000,
                device={"type": "cpu", "name": "x86_64"},
            )
            for im in ("kodim01", "kodim02")
        ]
    df = load_frame(write_records(tmp_path, recs))
    t = paper_table(df, load_experiment(EXPERIMENTS / "imagegs_table1.yaml"))
    psnr = t[t["metric"] == "psnr"].set_index("row")
    assert psnr.loc["Full", "ours"] == pytest.approx(31.0)
    assert psnr.loc["No top-K norm", "ours"] == pytest.approx(29.0)
    assert psnr.loc["Random init", "ours"] == pytest.approx(29.5)
    assert psnr.loc["Full", "dataset match"].startswith("no (paper: Image-GS")
    assert psnr.loc["Full", "iterations"] == "yes (5000)"
    assert psnr.loc["Full", "GPU"].startswith("no (cpu")


def test_every_experiment_file_loads_and_names_its_sources():
    files = sorted(EXPERIMENTS.glob("*.yaml"))
    assert {f.stem for f in files} >= {
        "gipp_table1",
        "gipp_table2",
        "gipp_codec",
        "gi_kodak",
        "imagegs_table1",
        "instantgi_kodak",
    }
    for f in files:
        exp = load_experiment(f)
        assert exp["sweep"] and all(s.startswith("python -m gsbench") for s in exp["sweep"])
        assert exp["gpu_hours"] > 0
        assert all(r.get("source") for r in exp["results"]), f
    t = paper_table(load_frame(Path("/nonexistent")), load_experiment(EXPERIMENTS / "instantgi_kodak.yaml"))
    assert set(t["source"]) == {"code README"} and set(t["ours"]) == {"not run"}


# ---- command line and reproduce ---------------------------------------------------------------------------


def test_cli_help_and_missing_root(capsys, tmp_path):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "RESULTS_ROOT" in capsys.readouterr().out
    assert cli.main([str(tmp_path / "nope")]) == 2


def test_reproduce_refuses_without_gpu(monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "has_cuda", lambda: False)
    monkeypatch.delenv("FORCE", raising=False)
    monkeypatch.setattr(reproduce.subprocess, "call", lambda *a, **k: pytest.fail("must not run"))
    assert reproduce.main([str(EXPERIMENTS / "gi_kodak.yaml"), "--dry-run"]) == 1
    captured = capsys.readouterr()
    assert "estimated GPU time: 4.0 h" in captured.out
    assert "no CUDA GPU" in captured.err and "FORCE=1" in captured.err


def test_reproduce_force_dry_run_prints_commands(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(reproduce, "has_cuda", lambda: False)
    monkeypatch.setenv("FORCE", "1")
    monkeypatch.setattr(reproduce.subprocess, "call", lambda *a, **k: pytest.fail("dry run must not run"))
    assert (
        reproduce.main([str(EXPERIMENTS / "imagegs_table1.yaml"), "--dry-run", "--results", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("+ ")]
    assert len(lines) == 7  # six sweeps (full and five ablations), then the report
    assert f"hydra.sweep.dir={tmp_path / 'imagegs_table1' / '2'}" in lines[2]
    assert "-m gsbench.report" in lines[6] and "--experiment" in lines[6]


def test_reproduce_runs_commands_when_allowed(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(reproduce, "has_cuda", lambda: True)
    monkeypatch.setattr(reproduce.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert reproduce.main([str(EXPERIMENTS / "gi_kodak.yaml"), "--results", str(tmp_path)]) == 0
    assert len(calls) == 2 and calls[0][1:4] == ["-m", "gsbench", "-m"]
    assert np.all([isinstance(c, list) for c in calls])


def test_reproduce_stops_on_unset_variable(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(reproduce, "has_cuda", lambda: True)
    monkeypatch.delenv("INSTANT_GI_CHECKPOINT", raising=False)
    monkeypatch.setattr(reproduce.subprocess, "call", lambda *a, **k: pytest.fail("must not run"))
    assert reproduce.main([str(EXPERIMENTS / "instantgi_kodak.yaml"), "--results", str(tmp_path)]) == 2
    assert "INSTANT_GI_CHECKPOINT" in capsys.readouterr().err
