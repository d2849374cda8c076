"""experiments/gi_kodak.yaml shows the official kernel's quirks on and off side by side: each row takes
only the records of its own (tile cap, Cholesky gradient) combination."""

from __future__ import annotations

import json

import pytest
from tests.test_report import EXPERIMENTS, make_record, write_records

from gsbench.report.aggregate import load_frame
from gsbench.report.paper import load_experiment, paper_table

COMBOS = {  # (legacy_tile_cap, legacy_cholesky_grad) -> our PSNR
    (True, True): 44.0,
    (False, False): 44.5,
    (True, False): 44.1,
    (False, True): 44.4,
}
ROWS = {
    (True, True): "GaussianImage (official kernel: tile cap + doubled gradient)",
    (False, False): "GaussianImage (gsbench default: uncapped, exact gradient)",
    (True, False): "GaussianImage (tile cap only)",
    (False, True): "GaussianImage (doubled gradient only)",
}


def test_gi_kodak_rows_pick_their_own_quirk_combination(tmp_path):
    recs = []
    for (cap, grad), psnr in COMBOS.items():
        for image in ("kodim01", "kodim02"):
            rec = make_record("gi", image, 70000, psnr=psnr)
            rec["config"]["render"].update(legacy_tile_cap=cap, legacy_cholesky_grad=grad)
            rec["config_hash"] = f"c{int(cap)}{int(grad)}"
            recs.append(rec)
    exp = load_experiment(EXPERIMENTS / "gi_kodak.yaml")
    assert "render.legacy_tile_cap=true,false" in exp["sweep"][0]
    assert "render.legacy_cholesky_grad=true,false" in exp["sweep"][0]
    table = paper_table(load_frame(write_records(tmp_path, recs)), exp)
    psnr = table[(table["metric"] == "psnr") & (table["point"].astype(str) == "70000")].set_index("row")
    for combo, label in ROWS.items():
        assert psnr.loc[label, "ours"] == pytest.approx(COMBOS[combo]), label
        assert psnr.loc[label, "paper"] == pytest.approx(44.08)
        assert int(psnr.loc[label, "n images"]) == 2
    json.dumps(table.astype(str).to_dict())  # the table serialises (it is written to the report)
