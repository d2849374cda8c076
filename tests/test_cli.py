"""The command line end to end (in-process; subprocesses for signals and W&B), resume, and user mistakes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gsbench.gaussians import resolve_backend
from helpers import ROOT, cli, gsbench, make_folder, records

TINY = [
    "gaussians=60",
    "train.iterations=20",
    "log_every=10",
    "task.fps_repeats=2",
    "task.fps_warmup=1",
    "device=cpu",
    "progress=false",
    "metrics.names=[psnr,psnr_8bit,ssim,lpips,flip]",
]


def test_help_lists_groups_and_options():
    res = cli("--help")
    assert res.returncode == 0, res.stderr
    line = next(s for s in res.stdout.splitlines() if s.startswith("method: "))
    assert {"gi", "gi_pp", "jpeg", "webp", "avif", "jxl", "coin"} <= set(line[len("method: ") :].split(", "))
    for word in (
        "dataset:",
        "kodak",
        "samples",
        "task: compress, represent",
        "logger: none, wandb",
        "render: default",
        "hydra/launcher",
    ):
        assert word in res.stdout, word


@pytest.mark.parametrize(
    "arg,group", [("method=nope", "method"), ("dataset=kodk", "dataset"), ("logger=tensorboard", "logger")]
)
def test_unknown_group_option_is_one_line_with_valid_names(arg, group):
    res = cli(arg)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert f"unknown {group}" in lines[0] and "valid names:" in lines[0]


def test_unknown_key_is_refused_with_hydra_hint():
    res = cli("train.iteratons=5")
    assert res.returncode != 0
    assert "iteratons" in res.stderr


def test_missing_dataset_says_where_to_put_it(tmp_path):
    res = cli("dataset=kodak", f"paths.data_dir={tmp_path}", *TINY, f"hydra.run.dir={tmp_path / 'o'}")
    assert res.returncode == 2
    assert str(tmp_path / "kodak") in res.stderr


def test_folder_run_end_to_end_with_a_bad_file(tmp_path):
    folder = make_folder(tmp_path, n=2)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    res = cli("dataset=folder", f"dataset.path={folder}", *TINY, f"hydra.run.dir={out}")
    assert res.returncode == 1, res.stderr  # 0 only when every image is ok
    assert res.stderr.strip().splitlines()[-1].startswith("gsbench: 1 image failed; reasons in their records")
    recs = records(out)
    assert {k: r["status"] for k, r in recs.items()} == {"img0": "ok", "img1": "ok", "broken": "failed"}
    assert "broken.png" in recs["broken"]["error"]
    ok = recs["img0"]
    for key in ("psnr", "psnr_8bit", "ssim", "flip"):
        assert isinstance(ok["metrics"][key], float), key
    assert ok["metrics"]["lpips"] is None and any("LPIPS" in n for n in ok["notes"])  # 24x32 is too small
    for key in ("config", "config_hash", "git", "versions", "device", "fit_seconds", "render_backend"):
        assert key in ok, key
    # the backend auto picks on this CPU: numba when installed, else torch
    assert ok["num_gaussians"] == 60 and ok["render_backend"] == resolve_backend("auto", "cpu")
    assert (out / "results.csv").exists() and "mean (2 ok)" in res.stdout
    assert any(p.suffix == ".png" for p in out.rglob("records/**/*"))


def _start_and_stop(tmp_path: Path, sig: int) -> tuple[list[str], Path, subprocess.Popen, str]:
    """Start a 3-image run, send ``sig`` once the first record exists (the second image is being fitted)."""
    folder = make_folder(tmp_path, n=3, size=(48, 64))
    out = tmp_path / "out"
    # enough iterations that an image takes seconds even on an idle machine, so the poll below sees
    # the first record while the second image is still being fitted
    args = ["dataset=folder", f"dataset.path={folder}", *TINY, "train.iterations=1500"]
    args.append(f"hydra.run.dir={out}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gsbench", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # a suite started in the background (`cmd &`) inherits an ignored SIGINT: restore the default
        # so Python installs its KeyboardInterrupt handler in the child
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while time.time() < deadline and not records(out) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return args, out, proc, err


def _resume_keeps_finished_records(args: list[str], out: Path) -> None:
    first = records(out)
    if len(first) == 3:  # a timing test: the machine finished every image before the signal landed
        pytest.skip("all images finished before the signal landed; nothing to resume")
    assert len(first) >= 1, "the signal should land after the first image"
    done_at = {k: r["finished_at"] for k, r in first.items()}
    # a subprocess like the interrupted run: a resume after a real process died, with that process's
    # threads (an in-process fit would run under the suite's torch thread count)
    res = gsbench(*args)
    assert res.returncode == 0, res.stderr
    second = records(out)
    assert len(second) == 3 and all(r["status"] == "ok" for r in second.values())
    for name, t in done_at.items():
        assert second[name]["finished_at"] == t  # not redone
    assert "skipped (already done)" in res.stdout


def test_resume_after_interrupt_loses_nothing(tmp_path):
    """Ctrl-C: exit 130 and one line (no traceback) naming what finished and the command that resumes."""
    args, out, proc, err = _start_and_stop(tmp_path, signal.SIGINT)
    if proc.returncode == 0:
        pytest.skip("all images finished before the interrupt landed; nothing to resume")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    line = [ln for ln in err.splitlines() if ln.startswith("gsbench: interrupted")]
    assert len(line) == 1 and "resume with: python -m gsbench " in line[0]
    assert line[0].endswith(f"hydra.run.dir={out}")
    _resume_keeps_finished_records(args, out)


def test_kill_9_mid_image_loses_only_that_image(tmp_path):
    """No clean-up at all (an OOM kill, a lost node): the finished records survive, complete."""
    args, out, proc, _ = _start_and_stop(tmp_path, signal.SIGKILL)
    assert proc.returncode in (-signal.SIGKILL, 0)
    for path in out.rglob("records/**/*.json"):
        json.loads(path.read_text())  # every record on disk is complete JSON (atomic writes)
    _resume_keeps_finished_records(args, out)


@pytest.mark.slow
def test_kodak_acceptance_command(kodak_dir, tmp_path):
    """The issue's acceptance run, shortened (2000 iterations take ~10 min here; 100 suffice to test)."""
    res = cli(
        "method=gi",
        "dataset=kodak",
        "dataset.limit=1",
        "gaussians=2000",
        "train.iterations=100",
        "device=cpu",
        "progress=false",
        "task.fps_repeats=3",
        f"hydra.run.dir={tmp_path}",
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path).values()
    assert rec["image"] == "kodim01" and rec["status"] == "ok"
    for key in ("psnr", "ms_ssim", "lpips", "flip"):
        assert rec["metrics"][key] is not None, key


def test_multirun_sweep_one_folder_per_job_and_resume(tmp_path):
    folder = make_folder(tmp_path, n=1)
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "dataset=folder",
        f"dataset.path={folder}",
        *TINY,
        "gaussians=30,40",
        f"hydra.sweep.dir={sweep}",
    ]
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.startswith("gi_"))
    assert jobs == ["gi_folder_g30_s1_0", "gi_folder_g40_s1_1"]
    recs = [json.loads(p.read_text()) for p in sweep.rglob("records/**/*.json")]
    assert sorted(r["num_gaussians"] for r in recs) == [30, 40]
    # the sweep-end callback wrote the sweep's report (tables and the represent plots)
    assert (sweep / "report" / "summary.csv").stat().st_size > 0
    assert any((sweep / "report" / "plots").glob("*.png"))
    again = cli(*args)
    assert again.returncode == 0 and again.stdout.count("skipped (already done): 1") == 2


def test_wandb_logger_offline(tmp_path):
    pytest.importorskip("wandb")
    folder = make_folder(tmp_path, n=1)
    out = tmp_path / "out"
    # a subprocess: W&B starts a service process and keeps a global run
    res = gsbench("dataset=folder", f"dataset.path={folder}", *TINY, "logger=wandb", f"hydra.run.dir={out}")
    assert res.returncode == 0, res.stderr
    assert list((out / "wandb").glob("offline-run-*")), (
        "an offline W&B run should be written in the job folder"
    )


def test_in_process_runs_leave_no_state_behind(tmp_path):
    """``cli`` runs ``main`` in this process: Hydra's logging, argv, cwd and global state are put back."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    root = logging.getLogger()
    handlers, level, argv, cwd = root.handlers[:], root.level, sys.argv[:], os.getcwd()
    folder = make_folder(tmp_path, n=1)
    for run in range(2):  # a second run in the same process works like the first
        out = tmp_path / f"out{run}"
        res = cli("method=jpeg", "task=compress", "dataset=folder", f"dataset.path={folder}", *TINY,
                  f"hydra.run.dir={out}")  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert list(out.glob("*.log")) and records(out)["img0"]["status"] == "ok"
        assert (root.handlers, root.level, sys.argv, os.getcwd()) == (handlers, level, argv, cwd)
        assert not GlobalHydra.instance().is_initialized() and not HydraConfig.initialized()
