"""Decoding FPS of a gsbench bitstream: file bytes -> entropy decoding -> dequantisation -> render.

Used by ``render_fps.py`` (the papers' "decoding FPS" beside the render-only FPS). The bitstream's method
and codec settings come from the Hydra config of the run that wrote it (``.hydra/config.yaml`` in a
parent folder), so any committed ``results/**/*.gsb`` can be timed.
"""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def find_bitstream() -> Path | None:
    """The newest ``results/**/*.gsb`` whose run folder holds the config that wrote it."""
    found = [p for p in (ROOT / "results").rglob("*.gsb") if run_config_path(p) is not None]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def run_config_path(path: Path) -> Path | None:
    """The ``.hydra/config.yaml`` of the run folder above ``path``, if any."""
    for parent in path.parents:
        if (parent / ".hydra" / "config.yaml").is_file():
            return parent / ".hydra" / "config.yaml"
    return None


def time_decode(path: Path, dev, tile: int, warmup: int, runs: int, time_runs) -> list[dict]:
    """Decoding FPS (file bytes -> pixels) and the render of the decoded Gaussians alone.

    ``time_runs(fn, sets, warmup, runs, dev) -> (median, p20, p80, n)`` in ms (render_fps.time_runs).
    """
    from omegaconf import OmegaConf

    from gsbench.gaussians import RenderOptions
    from gsbench.methods import FitContext
    from gsbench.methods.base import get_method

    cfg = OmegaConf.load(run_config_path(path))
    method = get_method(str(cfg.method.name), cfg.method, cfg.train, cfg.get("codec"))
    # the interpreter would take minutes per render of a full image: the smoke run decodes with torch
    opts = RenderOptions(backend="torch" if dev.type == "cpu" else "auto", tile_size=tile)
    ctx = FitContext(device=dev, render=opts, progress=False)
    data = path.read_bytes()
    with torch.no_grad():
        decoded = method.decode(data, ctx)
        runs = max(3, runs // 10)
        rows = []
        for what, fn in (
            ("decode+render", lambda: method.decode(data, ctx).render()),
            ("render", decoded.render),
        ):
            med, p20, p80, nr = time_runs(lambda *_, fn=fn: fn(), [()], min(warmup, 5), runs, dev)
            rows.append(
                dict(
                    renderer=f"{cfg.method.name}_{what}",
                    mode="decode",
                    median_ms=f"{med:.4f}",
                    p20_ms=f"{p20:.4f}",
                    p80_ms=f"{p80:.4f}",
                    fps=f"{1e3 / med:.1f}",
                    runs=nr,
                    gaussians=int(getattr(decoded, "num_gaussians", 0)),
                    height=decoded.height,
                    width=decoded.width,
                    bitstream=str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                    bytes=len(data),
                )
            )
            print(
                f"{decoded.width}x{decoded.height} {path.name} ({len(data)} B) {what:14s} "
                f"median {med:8.3f} ms {1e3 / med:8.1f}/s"
            )
    return rows
