"""Sweeps through Hydra's launchers (joblib, submitit_local; SLURM's config): records, resume, failures.

A sweep over a Gaussian method and a codec is two sweeps into one ``hydra.sweep.dir``: their budgets are
different keys (``gaussians`` for gi, ``method.quality`` for jpeg), and a Hydra sweep is a product.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, cli, make_folder

FAST = [
    "progress=false",
    "task.fps_repeats=2",
    "task.fps_warmup=1",
    "metrics.names=[psnr,ssim]",
    "save_reconstructions=false",
]
GI = ["method=gi", "gaussians=30,60", "train.iterations=5", "log_every=5"]
JPEG = ["method=jpeg", "task=compress", "method.quality=10,40"]


def all_records(sweep: Path) -> list[dict]:
    """Every record below ``sweep``; a record that does not parse fails the test (none may be partial)."""
    out = []
    for path in sorted(sweep.rglob("records/**/*.json")):
        rec = json.loads(path.read_text())
        rec["_path"] = path
        out.append(rec)
    return out


def key(rec: dict) -> tuple:
    return rec["method"], rec["budget"], rec["image"]


def job_dirs(sweep: Path) -> list[str]:
    """The sweep's job folders (those Hydra wrote a .hydra folder into)."""
    return sorted(p.name for p in sweep.iterdir() if (p / ".hydra").is_dir())


def two_methods_two_budgets(sweep: Path, launcher: list[str], dataset: list[str]) -> list[dict]:
    """gi at 30 and 60 Gaussians, then jpeg at quality 10 and 40, into the same sweep dir."""
    for method in (GI, JPEG):
        res = cli("-m", *method, *dataset, *FAST, *launcher, f"hydra.sweep.dir={sweep}")
        assert res.returncode == 0, res.stderr[-3000:]
    return all_records(sweep)


def check_grid(recs: list[dict], images: list[str]) -> None:
    got = sorted(key(r) for r in recs)
    want = sorted((m, b, i) for m, bs in (("gi", (30, 60)), ("jpeg", (10, 40))) for b in bs for i in images)
    assert got == want  # nothing lost, nothing twice
    assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    for r in recs:
        if r["method"] == "jpeg":
            assert r["task"] == "compress" and r["budget_name"] == "quality"
            assert (r["_path"].parent / r["bitstream"]).stat().st_size == r["bitstream_bytes"]
        else:
            assert r["task"] == "represent" and r["num_gaussians"] == r["budget"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "launcher",
    [
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=20"],
    ],
    ids=["joblib", "submitit_local"],
)
def test_sweep_two_methods_two_budgets_two_kodak_images(launcher, kodak_dir, tmp_path):
    sweep = tmp_path / "sweep"
    dataset = ["dataset=kodak", "dataset.limit=2"]
    recs = two_methods_two_budgets(sweep, launcher, dataset)
    check_grid(recs, ["kodim01", "kodim02"])
    jobs = job_dirs(sweep)
    assert [j for j in jobs if j.startswith("gi_")] == ["gi_kodak_g30_s1_0", "gi_kodak_g60_s1_1"]
    assert len([j for j in jobs if j.startswith("jpeg_")]) == 2
    # the jpeg sweep again through the same launcher: every image is skipped, nothing is rewritten
    done = {key(r): r["finished_at"] for r in recs}
    res = cli("-m", *JPEG, *dataset, *FAST, *launcher, f"hydra.sweep.dir={sweep}")
    assert res.returncode == 0, res.stderr[-3000:]
    assert {key(r): r["finished_at"] for r in all_records(sweep)} == done


@pytest.mark.slow
def test_killed_sweep_resumes_without_lost_or_duplicated_records(tmp_path):
    folder = make_folder(tmp_path, n=3, size=(48, 64))
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "method=gi",
        "gaussians=30,40",
        "train.iterations=300",
        "dataset=folder",
        f"dataset.path={folder}",
        *FAST,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gsbench", *args],
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the launcher's workers die with it
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list(sweep.rglob("records/**/*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # no clean-up at all: a node lost, an OOM kill
    proc.wait(timeout=60)
    time.sleep(1)
    first = all_records(sweep)
    assert 2 <= len(first) < 6, "the kill should land midway"
    assert all(r["status"] == "ok" for r in first)
    done = {key(r): r["finished_at"] for r in first}
    res = cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    second = all_records(sweep)
    keys = [key(r) for r in second]
    assert len(keys) == len(set(keys)) == 6  # 2 budgets x 3 images, none twice
    assert all(r["status"] == "ok" for r in second)
    for k, t in done.items():
        assert next(r for r in second if key(r) == k)["finished_at"] == t  # finished work is not redone


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    folder = make_folder(tmp_path, n=2)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    sweep = tmp_path / "sweep"
    args = ["-m", "method=jpeg", "task=compress", "dataset=folder", *FAST, "hydra/launcher=joblib"]
    args += ["hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"]
    bad = cli(*args, "method.quality=10,101,40", f"dataset.path={folder}")
    assert bad.returncode == 2 and "method.quality=101 is invalid" in bad.stderr  # refused before any job
    assert not sweep.exists()
    # a missing folder: that job fails as a whole, the others go on; a broken image fails alone
    res = cli(*args, "method.quality=10,40", f"dataset.path={folder},{tmp_path}/missing")
    assert res.returncode == 1, res.stderr[-3000:]  # not every image of every job is ok
    assert "gsbench: 2 images failed" in res.stderr
    recs = all_records(sweep)
    assert sorted((r["budget"], r["image"], r["status"]) for r in recs) == [
        (10, "broken", "failed"),
        (10, "img0", "ok"),
        (10, "img1", "ok"),
        (40, "broken", "failed"),
        (40, "img0", "ok"),
        (40, "img1", "ok"),
    ]
    assert all("broken.png" in r["error"] for r in recs if r["status"] == "failed")
    jobs = job_dirs(sweep)
    assert len(jobs) == 4
    failed_jobs = [j for j in jobs if not list((sweep / j).rglob("records/**/*.json"))]
    assert len(failed_jobs) == 2
    log = "".join(p.read_text() for j in failed_jobs for p in (sweep / j).glob("*.log"))
    assert "job failed:" in log and "missing" in log


def test_slurm_launcher_config(tmp_path):
    res = cli(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=90",
        "--cfg",
        "hydra",
        "-p",
        "hydra.launcher",
    )
    assert res.returncode == 0, res.stderr
    for line in (
        "SlurmLauncher",
        "partition: gpu",
        "timeout_min: 90",
        "gpus_per_node: 1",
        "max_num_timeout: 3",
        "name: gsbench",
    ):
        assert line in res.stdout, line


# ---- a fake SLURM: sbatch runs the array's tasks locally, srun runs its command, sacct reports states ----

FAKE_SLURM = r"""
import os, pathlib, re, subprocess, sys, time

STATE = pathlib.Path(os.environ["FAKE_SLURM_DIR"])
tool, argv = sys.argv[1], sys.argv[2:]


def expand(pattern):
    env = os.environ
    return (pattern.replace("%A", env["SLURM_ARRAY_JOB_ID"]).replace("%a", env["SLURM_ARRAY_TASK_ID"])
            .replace("%j", env["SLURM_JOB_ID"]).replace("%t", "0"))


if tool == "sbatch":
    text = pathlib.Path(argv[-1]).read_text()
    jid = 4242 + len(list(STATE.glob("submitted_*.sh")))
    copy = STATE / f"submitted_{jid}.sh"
    copy.write_text(text)
    subprocess.Popen([sys.executable, __file__, "run", str(copy), str(jid)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"Submitted batch job {jid}")
elif tool == "srun":
    args, out, err = list(argv), None, None
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            value = expand(args.pop(0))
            out, err = (value, err) if flag == "--output" else (out, value)
    with open(out, "a") as fo, open(err or out, "a") as fe:
        sys.exit(subprocess.run(args, stdout=fo, stderr=fe).returncode)
elif tool == "sacct":
    print("JobID|State|NodeList")
    for f in sorted(STATE.glob("*.state")):
        print(f"{f.stem}|{f.read_text()}|localhost")
elif tool == "run":
    script, jid = pathlib.Path(argv[0]), argv[1]
    text = script.read_text()
    count = int(re.search(r"#SBATCH --array=0-(\d+)", text)[1]) + 1
    folder = re.search(r"_submit (\S+)", text)[1].strip("'")
    for task in range(count):
        job = f"{jid}_{task}"
        (STATE / f"{job}.state").write_text("PENDING")
        pickle = pathlib.Path(folder.replace("%j", job)) / f"{job}_submitted.pkl"
        deadline = time.time() + 120
        while not pickle.exists() and time.time() < deadline:  # submitit moves it there after sbatch
            time.sleep(0.1)
    for task in range(count):  # one task after another: this machine has few cores
        job = f"{jid}_{task}"
        env = dict(os.environ, SLURM_JOB_ID=str(int(jid) * 100 + task), SLURM_ARRAY_JOB_ID=jid,
                   SLURM_ARRAY_TASK_ID=str(task), SLURM_NTASKS="1", SLURM_JOB_NUM_NODES="1",
                   SLURM_NODEID="0", SLURM_JOB_NODELIST="localhost", SLURM_PROCID="0", SLURM_LOCALID="0")
        (STATE / f"{job}.state").write_text("RUNNING")
        rc = subprocess.run(["bash", str(script)], env=env).returncode
        (STATE / f"{job}.state").write_text("COMPLETED" if rc == 0 else "FAILED")
"""


@pytest.mark.slow
def test_slurm_sweep_on_a_fake_cluster(tmp_path):
    """``hydra/launcher=slurm`` end to end against stand-ins for sbatch, srun and sacct."""
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm"
    bin_dir.mkdir()
    state.mkdir()
    source = bin_dir / "fake_slurm.py"
    source.write_text(FAKE_SLURM)
    for tool in ("sbatch", "srun", "sacct"):
        (bin_dir / tool).write_text(f'#!/bin/sh\nexec {sys.executable} {source} {tool} "$@"\n')
        (bin_dir / tool).chmod(0o755)
    folder = make_folder(tmp_path, n=2)
    sweep = tmp_path / "sweep"
    env = dict(os.environ, FAKE_SLURM_DIR=str(state), PATH=f"{bin_dir}:{os.environ['PATH']}")
    args = [*JPEG, "dataset=folder", f"dataset.path={folder}", *FAST, "hydra/launcher=slurm"]
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "gsbench",
            "-m",
            *args,
            "hydra.launcher.partition=gpu",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    (script,) = state.glob("submitted_*.sh")
    text = script.read_text()
    for flag in (
        "--array=0-1%2",
        "--gpus-per-node=1",
        "--cpus-per-task=8",
        "--mem=32GB",
        "--partition=gpu",
        "--time=720",
        "--job-name=gsbench",
        "--signal=USR2@120",
    ):
        assert f"#SBATCH {flag}" in text, flag
    recs = all_records(sweep)
    assert sorted((r["budget"], r["image"], r["status"]) for r in recs) == [
        (10, "img0", "ok"),
        (10, "img1", "ok"),
        (40, "img0", "ok"),
        (40, "img1", "ok"),
    ]
