"""Golden files: a small fixed set of records in ``tests/golden/report/records`` (a 112 bpp outlier, a
0-Gaussian run, a failed image, an old folder record without a content hash and with a pixel codec's
copy timed as a render) must give exactly the committed summary, speed table and CompressAI JSON.

After an intended change of the report, regenerate the expected files with
``GSBENCH_UPDATE_GOLDEN=1 python -m pytest tests/test_report_golden.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from gsbench.report import build_report

GOLDEN = Path(__file__).resolve().parent / "golden" / "report"
SUMMARY_COLUMNS = ["method", "setting", "dataset", "task", "budget", "n_ok", "n_failed", "n_images",
                   "bpp_mean", "bpp_payload_mean", "psnr_mean", "psnr_std", "num_gaussians_mean"]  # fmt: skip
SPEED_COLUMNS = ["method", "dataset", "task", "budget", "n_images", "render_fps", "decode_fps"]


def _csv(df: pd.DataFrame, columns: list[str]) -> str:
    return df[[c for c in columns if c in df.columns]].to_csv(index=False, float_format="%.6g")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden_report")
    build_report(GOLDEN / "records", out, plots=False)
    return out


def _check(name: str, actual: str) -> None:
    path = GOLDEN / "expected" / name
    if os.environ.get("GSBENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} differs from the golden file (see the module docstring)"


def test_summary_matches_golden(report):
    _check("summary.csv", _csv(pd.read_csv(report / "summary.csv"), SUMMARY_COLUMNS))


def test_speed_matches_golden(report):
    _check("speed.csv", _csv(pd.read_csv(report / "speed.csv"), SPEED_COLUMNS))


def test_compressai_json_matches_golden(report):
    files = sorted((report / "compressai").rglob("*.json"))
    blob = {str(p.relative_to(report / "compressai")): json.loads(p.read_text()) for p in files}
    _check("compressai.json", json.dumps(blob, indent=1, sort_keys=True) + "\n")
