"""The metric registry: a metric registered at test time (one call, no list edited) reaches the record, the
job's results table and every part of the report; the registry refuses inconsistent metrics."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from gsbench.columns import printed_columns, task_columns
from gsbench.config import CONFIG_DIR
from gsbench.metrics import DEFAULT_METRICS, REGISTRY, Metric, compute_metrics_with_notes, register
from gsbench.metrics.registry import MetricRegistry
from gsbench.registry import UnknownNameError
from gsbench.report import build_report
from gsbench.report.bdrate import bd_metrics
from gsbench.report.plots import rd_plot_metrics
from gsbench.report.tables import summary_view
from gsbench.runner import run_job
from gsbench.runner.summary import format_table
from helpers import compose_config, make_folder


def mae(ref: torch.Tensor, rec: torch.Tensor) -> float:
    """Mean absolute error of the clamped render."""
    return float((ref - rec.clamp(0, 1)).abs().mean())


@pytest.fixture
def toy_metric():
    """``mae`` (with ``mae_255`` derived from it) in the registry for one test."""
    metric = register(
        Metric("mae", "MAE", "lower", compute=mae, compressai_key="mae-rgb", headline=True, rd_plot=True)
    )
    register(Metric("mae_255", "MAE", "lower", "8-bit levels", derived_from="mae", derive=lambda v: v * 255))
    yield metric
    REGISTRY.unregister("mae")
    assert "mae" not in REGISTRY and "mae_255" not in REGISTRY


def test_a_registered_metric_reaches_record_table_and_report(toy_metric, tmp_path):
    folder = make_folder(tmp_path, n=2, size=(24, 32))
    cfg = compose_config(
        "method=jpeg",
        "task=compress",
        "dataset=folder",
        f"dataset.path={folder}",
        "device=cpu",
        "progress=false",
        "metrics.names=[psnr,mae]",
    )
    result = run_job(cfg, tmp_path / "out")
    assert not result.failed
    # the record: computed, its derived value right after it
    rec = json.loads(next(result.records_dir.glob("img0.json")).read_text())
    assert list(rec["metrics"]) == ["psnr", "mae", "mae_255"]
    assert rec["metrics"]["mae_255"] == pytest.approx(rec["metrics"]["mae"] * 255)
    # the job's table (results.csv) and its printed view
    assert "mae" in task_columns("compress") and "mae" in printed_columns("compress")
    assert result.table["mae"].notna().all() and "mae_255" in result.table
    assert "mae" in format_table(result.table, "compress").splitlines()[0]
    # the report: tidy table, summary (csv and md), CompressAI JSON; and the RD figures would draw it
    report = build_report(tmp_path / "out", tmp_path / "report", plots=False)
    assert report.n_records == 2
    records_csv = (tmp_path / "report" / "records.csv").read_text().splitlines()[0].split(",")
    assert {"mae", "mae_255"} <= set(records_csv)
    summary = (tmp_path / "report" / "summary.csv").read_text().splitlines()[0].split(",")
    assert {"mae_mean", "mae_255_mean"} <= set(summary)
    assert "mae" in summary_view("compress")
    assert "| mae |" in (tmp_path / "report" / "summary.md").read_text()
    (curve,) = (tmp_path / "report" / "compressai").rglob("*.json")
    assert len(json.loads(curve.read_text())["results"]["mae-rgb"]) == 1
    assert ("mae", "MAE (lower is better)") in rd_plot_metrics()
    assert "mae" not in bd_metrics()  # BD takes higher-is-better metrics only


BUILTIN = ("psnr", "psnr_8bit", "ssim", "ms_ssim", "ms_ssim_db", "lpips", "flip")


def test_builtin_metrics_and_their_metadata():
    assert tuple(n for n in REGISTRY.names() if n in BUILTIN) == BUILTIN  # in table order
    assert REGISTRY.names(derived=False) == DEFAULT_METRICS
    assert {m.name: m.compressai_key for m in REGISTRY if m.compressai_key} == {
        "psnr": "psnr-rgb",
        "ms_ssim": "ms-ssim-rgb",
    }
    assert [m.name for m in REGISTRY if m.direction == "lower"] == ["lpips", "flip"]
    assert REGISTRY.get("ms_ssim_db").axis_label == "MS-SSIM (dB)"
    assert bd_metrics() == ("psnr", "ms_ssim_db")


def test_default_config_names_registered_metrics():
    """The config's default list is kept explicit (it is part of every run's config hash): it must name
    metrics that exist, and it names all the built-in ones."""
    names = yaml.safe_load((CONFIG_DIR / "metrics" / "default.yaml").read_text())["names"]
    assert set(names) <= set(DEFAULT_METRICS)
    assert tuple(names) == tuple(n for n in BUILTIN if n != "ms_ssim_db")


def test_registry_refuses_inconsistent_metrics():
    reg = MetricRegistry()
    reg.register(Metric("a", "A", "higher", compute=mae))
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(Metric("a", "A2", "higher", compute=mae))
    with pytest.raises(ValueError, match="register 'b' first"):
        reg.register(Metric("b_db", "B", "higher", "dB", derived_from="b", derive=float))
    with pytest.raises(ValueError, match="direction"):
        Metric("c", "C", "up", compute=mae)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="either compute or derived_from"):
        Metric("d", "D", "higher")
    with pytest.raises(ValueError, match="higher-is-better"):
        Metric("e", "E", "lower", compute=mae, bd=True)
    with pytest.raises(UnknownNameError, match="valid names: a"):
        reg.get("zzz")


def test_a_derived_metric_is_not_asked_for_by_name():
    ref = torch.full((3, 16, 16), 0.5)
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics_with_notes(ref, ref, ["ms_ssim_db"])
