"""The W&B logger logs a record's task columns (the columns of results.csv), with a stand-in wandb."""

from __future__ import annotations

import sys
import types

from gsbench.columns import task_columns
from gsbench.loggers import WandbLogger


class _Run:
    def __init__(self) -> None:
        self.logged: list[dict] = []

    def log(self, data: dict, step: int | None = None) -> None:
        self.logged.append(data)

    def finish(self) -> None:
        pass


def _fake_wandb(monkeypatch) -> _Run:
    run = _Run()
    module = types.SimpleNamespace(
        init=lambda **kw: run,
        Table=lambda columns, data: {"columns": columns, "data": data},
        Image=lambda *a, **k: None,
    )
    monkeypatch.setitem(sys.modules, "wandb", module)
    return run


def test_compress_record_logs_rate_and_codec_timings(monkeypatch, tmp_path):
    run = _fake_wandb(monkeypatch)
    logger = WandbLogger({"mode": "offline"}, {}, tmp_path)
    rec = {
        "image": "a", "task": "compress", "num_gaussians": 0, "metrics": {"psnr": 30.0, "lpips": None},
        "bpp": 0.5, "bpp_payload": 0.5, "bitstream_bytes": 100, "encode_seconds": 0.1, "fit_seconds": 0.1,
        "decode_seconds": 0.01, "decode": {"decode_fps": 90.0}, "render": None,
    }  # fmt: skip
    logger.log_record(rec)
    logger.finish()
    final = run.logged[0]
    for key in ("bpp", "bpp_payload", "bitstream_bytes", "encode_seconds", "decode_seconds", "decode_fps"):
        assert f"final/{key}" in final, key
    assert "final/render_fps" not in final and "final/lpips" not in final  # nothing rendered; null metric
    table = run.logged[-1]["results"]
    assert table["columns"] == ["image", *task_columns("compress")] and table["data"][0][0] == "a"
