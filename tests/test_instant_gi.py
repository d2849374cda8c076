"""instant_gi: dithering, triangles and ellipses, the network, checkpoints, the fit's records, train_init."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gsbench.errors import UserError
from gsbench.gaussians import scale_rot_to_cov
from gsbench.methods import FitContext, get_method
from gsbench.methods.instant_gi.checkpoint import load_checkpoint, save_checkpoint
from gsbench.methods.instant_gi.finetune import rs_model_from
from gsbench.methods.instant_gi.model import InitNet, NetConfig
from gsbench.methods.instant_gi.points import (
    ELLIPSE_LEVEL,
    cells_to_points,
    fit_ellipses,
    floyd_steinberg,
    pool_max,
    propose,
    scale_to_mass,
    triangulate,
)
from gsbench.methods.instant_gi.quadtree import density_map, quadtree_centres, quadtree_gaussians
from gsbench.report.time_quality import time_to_quality_plot, time_to_quality_series

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"


def run(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def sequential_fs(p: np.ndarray) -> np.ndarray:
    """Textbook raster-order Floyd–Steinberg, the reference for the wavefront version."""
    p = p.astype(np.float64).copy()
    h, w = p.shape
    out = np.zeros((h, w), bool)
    for i in range(h):
        for j in range(w):
            out[i, j] = p[i, j] >= 0.5
            e = p[i, j] - out[i, j]
            for di, dj, wt in ((0, 1, 7), (1, -1, 3), (1, 0, 5), (1, 1, 1)):
                if i + di < h and 0 <= j + dj < w:
                    p[i + di, j + dj] += e * wt / 16
    return out


# --- dithering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (13, 21), (30, 17)])
def test_wavefront_dithering_equals_sequential(shape):
    p = np.random.default_rng(sum(shape)).random(shape)
    assert (floyd_steinberg(torch.from_numpy(p)).numpy() == sequential_fs(p)).all()


@pytest.mark.parametrize("level", [0.05, 0.3, 0.5, 0.8])
def test_dithering_count_is_the_mass(level):
    gen = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 2 * level, 90).clamp(max=1)[None].expand(60, 90)
    for prob in (torch.full((60, 90), level), ramp, torch.rand(60, 90, generator=gen) * 2 * level):
        prob = prob.clamp(0, 1)
        count, mass = int(floyd_steinberg(prob).sum()), float(prob.sum())
        # error diffusion keeps the mass but for what leaves across the right and bottom edges (under
        # half a point per edge cell); on 5,400 cells that is a few percent at most
        assert abs(count - mass) <= 0.5 * (60 + 90), (count, mass)
        assert abs(count - mass) <= 0.03 * mass or mass < 1000, (count, mass)


def test_pooling_scaling_and_cell_centres():
    ppm = torch.zeros(10, 14)
    ppm[4, 13] = 0.9
    pooled = pool_max(ppm, 3)
    assert pooled.shape == (4, 5) and pooled[1, 4] == pytest.approx(0.9)
    assert float(scale_to_mass(pooled, 0.45).sum()) == pytest.approx(0.45)
    up = scale_to_mass(torch.rand(20, 20, generator=torch.Generator().manual_seed(1)), 300.0)
    assert float(up.sum()) == pytest.approx(300.0, rel=1e-4) and float(up.max()) <= 1
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 0] = mask[3, 4] = True
    pts = cells_to_points(mask, 3, 10, 14)
    # cell (0, 0) covers pixels 0..2 -> centre 1; the cut cell (3, 4) covers x 12..13, y 9 only
    assert pts.tolist() == [[1.0, 1.0], [12.5, 9.0]]


# --- triangles and ellipses --------------------------------------------------------------------------


def opencv_fit_ellipse(pts: np.ndarray):
    """OpenCV's fitEllipse (no-direct) in numpy: a conic about the mean, then A..C with the centre fixed."""
    c = pts.mean(0)
    scale = 100.0 / np.abs(pts - c).sum()
    x, y = ((pts - c) * scale).T
    g = np.linalg.lstsq(np.stack([-x * x, -y * y, -x * y, x, y], 1), np.full(len(x), 1e4), rcond=None)[0]
    centre = np.linalg.solve([[2 * g[0], g[2]], [g[2], 2 * g[1]]], [g[3], g[4]])
    x, y = x - centre[0], y - centre[1]
    q = np.linalg.lstsq(np.stack([x * x, y * y, x * y], 1), np.ones(len(x)), rcond=None)[0]
    evals, evecs = np.linalg.eigh([[q[0], q[2] / 2], [q[2] / 2, q[1]]])
    semi = 1 / np.sqrt(evals[::-1]) / scale  # minor first
    return centre / scale + c, semi, math.atan2(evecs[1, 1], evecs[0, 1]) % math.pi


def test_closed_form_ellipse_is_opencvs_fit_of_vertices_and_midpoints():
    tris = np.random.default_rng(3).random((25, 3, 2)) * 40
    centres, semi, angles = fit_ellipses(torch.from_numpy(tris))
    for i, tri in enumerate(tris):
        c, s, a = opencv_fit_ellipse(np.concatenate([tri, (tri + np.roll(tri, -1, 0)) / 2]))
        np.testing.assert_allclose(centres[i].numpy(), c, atol=1e-8)
        np.testing.assert_allclose(semi[i].numpy(), s, rtol=1e-8)
        diff = abs(a - float(angles[i]))
        assert min(diff, math.pi - diff) < 1e-7 or s[1] - s[0] < 1e-9
    # equilateral, circumradius R: a circle about the centroid of radius sqrt(17/20) R
    r = 2.0
    eq = torch.tensor([[[r * math.cos(t), r * math.sin(t)] for t in (0, 2 * math.pi / 3, 4 * math.pi / 3)]])
    c, s, _ = fit_ellipses(eq.double() + 5)
    assert c[0].tolist() == pytest.approx([5, 5]) and s[0].tolist() == pytest.approx(
        [math.sqrt(0.85) * r] * 2
    )
    assert ELLIPSE_LEVEL == 1.7


def test_triangulation_of_a_toy_grid():
    xs, ys = np.meshgrid(np.arange(5, 40, 10.0), np.arange(5, 30, 10.0))
    pts = torch.from_numpy(np.stack([xs.ravel(), ys.ravel()], 1)).float()  # 12 points in a 40 x 30 image
    tri = triangulate(pts, 30, 40)
    assert tri.num_points == 12 and tri.count > 2 * 12
    assert tri.triangles.shape == (tri.count, 3, 2) and tri.neighbors.shape == (tri.count, 3)
    d = tri.triangles[:, 1:] - tri.triangles[:, :1]
    area = 0.5 * (d[:, 0, 0] * d[:, 1, 1] - d[:, 0, 1] * d[:, 1, 0]).abs()
    assert float(area.sum()) == pytest.approx(39 * 29, rel=1e-5)  # border points: the whole image is covered
    for t, row in enumerate(tri.neighbors.tolist()):  # neighbours are mutual (or the triangle itself)
        assert all(n == t or t in tri.neighbors[n].tolist() for n in row)
    assert (tri.semi_axes[:, 0] <= tri.semi_axes[:, 1]).all() and (tri.semi_axes > 0).all()


@pytest.mark.parametrize("mode,budget", [("free", None), ("cap", 300), ("cap", 5000), ("target", 400)])
def test_budget_modes(mode, budget):
    ppm = torch.rand(72, 96, generator=torch.Generator().manual_seed(0)) * 0.8
    tri, info = propose(ppm, 3, budget, mode)
    assert info["count"] == tri.count and info["network_count"] >= 1
    if mode == "free" or (mode == "cap" and info["network_count"] <= budget):
        assert tri.count == info["network_count"]
    elif mode == "cap":
        assert tri.count <= budget
    else:
        assert abs(tri.count - budget) <= 0.1 * budget


# --- network, parameters, checkpoints -----------------------------------------------------------------


def test_network_forward_shapes_and_gradients():
    torch.manual_seed(0)
    net = InitNet(NetConfig.for_arch("tiny"))
    image = torch.rand(1, 3, 37, 50)
    fmap, ppm = net.features(image)
    assert fmap.shape == (1, 64, 37, 50) and ppm.shape == (37, 50)
    assert float(ppm.detach().min()) > 0 and float(ppm.detach().max()) < 1
    tri, _ = propose(ppm.detach(), 3)
    g = net.gaussians(image, fmap, tri)
    n = tri.count
    assert (
        g.xy.shape == (n, 2)
        and g.scale.shape == (n, 2)
        and g.rotation.shape == (n,)
        and g.color.shape == (n, 3)
    )
    assert g.xy.abs().max() < 1 and (g.scale > 0).all() and (g.rotation > 0).all() and (g.rotation < 1).all()
    (g.xy.sum() + g.scale.sum() + g.rotation.sum() + g.color.sum() + ppm.sum()).backward()
    for name in ("bc_field", "scale_rot_field", "color_field", "position_field", "feature_net"):
        grads = [p.grad for p in getattr(net, name).parameters() if p.grad is not None]
        assert grads and any(float(gr.abs().sum()) > 0 for gr in grads), name


def test_rs_model_holds_the_proposed_gaussians():
    gen = torch.Generator().manual_seed(2)
    xy = torch.rand(50, 2, generator=gen) * 1.8 - 0.9
    scale = torch.rand(50, 2, generator=gen) * 4 + 0.5
    rot = torch.rand(50, generator=gen) * 0.9 + 0.05
    color = torch.rand(50, 3, generator=gen)
    model = rs_model_from(xy, scale, rot, color, 30, 40)
    means, cov, colors = model.gaussians()
    torch.testing.assert_close(means, 0.5 * torch.tensor([40.0, 30.0]) * (xy + 1), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(cov, scale_rot_to_cov(scale, rot * 2 * math.pi), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(colors, color)
    assert sum(p.numel() for p in model.parameters()) == 50 * 8


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    net = InitNet(NetConfig.for_arch("tiny", kernel_size=4)).eval()
    path = save_checkpoint(tmp_path / "n.pt", net, data={"sha256": "abc"}, config={"epochs": 1})
    loaded, ckpt = load_checkpoint(path)
    assert ckpt["data"]["sha256"] == "abc" and loaded.cfg.kernel_size == 4 and loaded.cfg.arch == "tiny"
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(image)[1], net.features(image)[1])
    with pytest.raises(UserError, match=r"init\.checkpoint=PATH.*gsbench\.train_init"):
        load_checkpoint(None)
    with pytest.raises(UserError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a gsbench instant_gi checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny.pt", InitNet(NetConfig.for_arch("tiny")))


def test_fit_records_count_and_checkpoints(tiny_checkpoint):
    method = get_method(
        "instant_gi",
        {"name": "instant_gi", "checkpoint": str(tiny_checkpoint), "budget_mode": "cap"},
        {"iterations": 4, "seconds": None, "log_seconds": [0.0, 1e9]},
    )
    image = torch.rand(3, 24, 36, generator=torch.Generator().manual_seed(0))
    fitted = method.fit(image, 60, FitContext(progress=False, log_every=2, label="toy"))
    info = fitted.info()
    assert fitted.num_gaussians == info["init"]["count"] <= 60 and info["init"]["budget_mode"] == "cap"
    assert info["init"]["network_count"] >= info["init"]["count"]
    labels = [c["label"] for c in info["checkpoints"]]
    assert labels == ["init", "0s", "end"]  # 1e9 s is never reached
    assert [c["step"] for c in info["checkpoints"]] == [0, 0, 4]
    assert all({"seconds", "step", "psnr"} <= set(c) for c in info["checkpoints"])
    assert [h["step"] for h in info["history"]] == [2, 4] and all("seconds" in h for h in info["history"])
    assert fitted.render().shape == (3, 24, 36) and info["checkpoint_sha256"]


def test_time_budget_mode_stops_on_the_clock(tiny_checkpoint):
    method = get_method(
        "instant_gi",
        {"name": "instant_gi", "checkpoint": str(tiny_checkpoint), "budget_mode": "free"},
        {"iterations": 2000, "seconds": 0.0, "max_iterations": 50, "log_seconds": []},
    )
    fitted = method.fit(torch.rand(3, 16, 16), 10**6, FitContext(progress=False, log_every=0))
    end = fitted.info()["checkpoints"][-1]
    assert end["label"] == "end" and end["step"] == 1  # a zero-second budget: one step, then stop


def test_missing_checkpoint_is_a_user_error():
    with pytest.raises(UserError, match=r"gsbench\.train_init"):
        get_method("instant_gi", {"name": "instant_gi", "checkpoint": None}, {"iterations": 1})
    res = run("gsbench", "method=instant_gi", "dataset=kodak", "device=cpu")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "init.checkpoint=PATH" in lines[0] and "train_init" in lines[0], res.stderr


# --- pseudo-targets, training CLI, plot ---------------------------------------------------------------


def test_quadtree_splits_where_the_image_is_busy():
    gen = torch.Generator().manual_seed(0)
    image = torch.full((3, 48, 64), 0.5)
    image[:, :, 32:] = torch.rand(3, 48, 32, generator=gen)
    pts = quadtree_centres(image)
    assert (pts[:, 0] >= 32).sum() > 4 * (pts[:, 0] < 32).sum()
    xy, scale, rot, color = quadtree_gaussians(image)
    assert xy.shape[1] == 2 and len(xy) == len(scale) == len(rot) == len(color) > len(pts)
    assert xy.abs().max() <= 1 and (scale > 0).all() and (rot > 0).all() and (rot < 1).all()
    ppm = density_map(0.5 * torch.tensor([64.0, 48.0]) * (xy + 1), 48, 64)
    assert ppm.shape == (48, 64) and ppm.min() >= 0 and ppm.max() <= 1
    assert ppm[:, 40:].mean() > ppm[:, :24].mean()


def test_train_init_help():
    res = run("gsbench.train_init", "--help", timeout=60)
    assert res.returncode == 0
    for word in ("--images", "--recipe", "cpu-tiny", "gpu", "--pseudo-iterations", "init.checkpoint"):
        assert word in res.stdout, word


def test_time_to_quality_plot(tmp_path):
    gi = {
        "method": "gi",
        "dataset": "kodak",
        "image": "a",
        "status": "ok",
        "fit_seconds": 10.0,
        "metrics": {"psnr": 25.0},
        "method_info": {"history": [{"step": 100, "psnr": 20.0}, {"step": 200, "psnr": 24.0}]},
    }
    igi = {
        "method": "instant_gi",
        "dataset": "kodak",
        "image": "a",
        "status": "ok",
        "fit_seconds": 6.0,
        "metrics": {"psnr": 27.0},
        "method_info": {
            "checkpoints": [
                {"label": "init", "seconds": 0.3, "step": 0, "psnr": 22.0},
                {"label": "2s", "seconds": 2.1, "step": 90, "psnr": 25.0},
                {"label": "end", "seconds": 6.0, "step": 300, "psnr": 27.0},
            ]
        },
    }
    t, p, measured = time_to_quality_series(gi)
    assert not measured and t.tolist() == [5.0, 10.0] and p.tolist() == [20.0, 25.0]
    other = dict(igi, image="b")  # only instant_gi has it: left out
    path = tmp_path / "ttq.png"
    summary = time_to_quality_plot([gi, igi, other], path)
    assert path.stat().st_size > 1000 and summary["images"] == ["a"]
    assert summary["methods"]["instant_gi"]["measured"] and not summary["methods"]["gi"]["measured"]
    assert summary["methods"]["instant_gi"]["psnr"][0] == pytest.approx(22.0)


@pytest.mark.slow
def test_train_then_fit_end_to_end(tmp_path, kodak_dir):
    if not (PHOTOS / "001.png").exists():
        pytest.skip(f"photos not found at {PHOTOS}")
    out = tmp_path / "net"
    res = run("gsbench.train_init", "--images", str(PHOTOS), "--out", str(out), "--recipe", "cpu-tiny")
    assert res.returncode == 0, res.stderr
    ckpt = torch.load(out / "init_net.pt", weights_only=True)
    assert ckpt["steps"] == 6 and len(ckpt["data"]["files"]) == 4 and len(ckpt["data"]["sha256"]) == 64
    assert ckpt["config"]["center_crop"] == 64 and ckpt["pseudo"]["num_gaussians"] > 0
    args = [
        "method=instant_gi",
        "dataset=kodak",
        "dataset.limit=1",
        f"init.checkpoint={out / 'init_net.pt'}",
        "train.iterations=20",
        "gaussians=400",
        "device=cpu",
        "progress=false",
        "task.fps_warmup=1",
        "task.fps_repeats=2",
        "metrics.names=[psnr]",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    res = run("gsbench", *args)
    assert res.returncode == 0, res.stderr
    (rec_path,) = (tmp_path / "run").rglob("records/**/kodim01.json")
    rec = json.loads(rec_path.read_text())
    assert rec["status"] == "ok", rec.get("error")
    info = rec["method_info"]
    assert rec["num_gaussians"] == info["init"]["count"] <= 400
    assert info["checkpoints"][0]["label"] == "init" and info["checkpoints"][-1]["step"] == 20
    assert math.isfinite(rec["metrics"]["psnr"])


def test_report_draws_time_to_quality(tmp_path):
    """``python -m gsbench.report`` draws the figure when the records hold instant_gi runs."""
    from gsbench.records import RECORD_VERSION
    from gsbench.report.cli import time_to_quality_plots

    common = {"record_version": RECORD_VERSION, "dataset": "kodak", "image": "a", "status": "ok"}
    common["task"] = "represent"
    gi = dict(common, method="gi", fit_seconds=10.0, metrics={"psnr": 25.0})
    gi["method_info"] = {"history": [{"step": 100, "psnr": 20.0}, {"step": 200, "psnr": 24.0}]}
    igi = dict(common, method="instant_gi", fit_seconds=6.0, metrics={"psnr": 27.0})
    marks = [{"label": "init", "seconds": 0.3, "step": 0, "psnr": 22.0}]
    marks.append({"label": "end", "seconds": 6.0, "step": 300, "psnr": 27.0})
    igi["method_info"] = {"checkpoints": marks}
    for i, rec in enumerate((gi, igi)):
        (tmp_path / f"r{i}.json").write_text(json.dumps(rec))
    (path,) = time_to_quality_plots(tmp_path, tmp_path / "plots")
    assert path.name == "time_to_quality_kodak.png" and path.stat().st_size > 1000
