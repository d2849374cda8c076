"""Bad values refused up front (one line, exit 2), exit statuses, Ctrl-C, and gsbench's image-size limit.

In-process: ``gsbench.__main__.main(argv)`` is called directly (Hydra can run again in one process).
"""

from __future__ import annotations

import json
import shlex
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gsbench.__main__ import main
from gsbench.data import ImageError, load_image
from gsbench.errors import UserError
from gsbench.validation import RULES, check_argv, check_config, method_tasks, methods_for
from helpers import compose_config

TINY = [
    "gaussians=30",
    "train.iterations=5",
    "task.fps_repeats=1",
    "task.fps_warmup=0",
    "device=cpu",
    "progress=false",
    "log_every=0",
    "metrics.names=[psnr]",
]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``python -m gsbench *argv``, in this process."""
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def folder_of_images(tmp_path: Path, n: int = 2, bad: bool = False) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray((rng.random((16, 24, 3)) * 255).astype(np.uint8)).save(folder / f"img{i}.png")
    if bad:
        (folder / "broken.png").write_bytes(b"not an image")
    return folder


def interrupt_nth_image(monkeypatch, n: int):
    """Make the ``n``-th image the runner starts raise KeyboardInterrupt; returns the real function."""
    from gsbench.runner import job

    real = job._run_image
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(job, "_run_image", interrupted)
    return real


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("gaussians=0", "gaussians=0 is invalid: expected an integer 1..16777216"),
        ("gaussians=-5", "gaussians=-5 is invalid: expected an integer 1..16777216"),
        ("gaussians=abc", "gaussians=abc is invalid: expected an integer 1..16777216"),
        ("gaussians=1.5", "gaussians=1.5 is invalid"),
        ("train.iterations=0", "train.iterations=0 is invalid: expected an integer 1..1000000000"),
        ("train.iterations=-3", "train.iterations=-3 is invalid"),
        ("seed=-1", "seed=-1 is invalid"),
        ("task.fps_repeats=0", "task.fps_repeats=0 is invalid: expected an integer 1..1000000"),
        ("dataset.limit=0", "dataset.limit=0 is invalid: expected an integer >= 1 or null"),
        ("method.lr=0", "method.lr=0 is invalid: expected a number > 0"),
        ("limits.max_pixels=-1", "limits.max_pixels=-1 is invalid"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(arg, expected, capsys):
    code, _, err = run([arg, "device=cpu"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"gsbench: error: {lines[0].split('error: ', 1)[1]}"
    assert expected in lines[0] and "Traceback" not in err


def test_bad_values_of_a_sweep_are_refused_before_any_job(capsys, tmp_path):
    code, _, err = run(["-m", "gaussians=100,0", f"hydra.sweep.dir={tmp_path}/s"], capsys)
    assert code == 2 and "gaussians=0 is invalid" in err
    assert not (tmp_path / "s").exists()  # no job ran


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["method=instant_gi", "task=compress"], "method=instant_gi cannot run task=compress"),
        (["method=jpeg", "task=represent"], "method=jpeg cannot run task=represent"),
        (["method=jpeg", "method.quality=101"], "method.quality=101 is invalid: expected an integer 0..100"),
        (["method=gi_pp", "codec.position_bits=17"], "codec.position_bits=17 is invalid"),
        (["method=image_gs", "method.k=0"], "method.k=0 is invalid: expected an integer 1..64"),
        (["method=coin", "method.hidden=0"], "method.hidden=0 is invalid"),
    ],
)
def test_bad_method_values_and_pairs(argv, expected, capsys):
    code, _, err = run([*argv, "device=cpu"], capsys)
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1


def test_values_from_config_files_are_checked_too(capsys, tmp_path):
    """A bad value that comes from composition (not an override) is caught by the job-level check."""
    code, _, err = run(["method=jpeg", "task.fps_repeats=${task.fps_warmup}", "task.fps_warmup=0"], capsys)
    assert code == 2 and "task.fps_repeats=0 is invalid" in err


def test_compress_methods_come_from_the_registry():
    assert {"gi", "gi_pp", "image_gs", "sgi", "coin", "jpeg", "webp"} <= set(methods_for("compress"))
    assert "instant_gi" not in methods_for("compress")
    assert method_tasks("jpeg") == ("compress",)
    assert method_tasks("sgi") == ("represent", "compress")


def test_every_rule_states_its_range():
    for rule in RULES:
        assert rule.valid_range().startswith(("an integer", "a number")), rule
    with pytest.raises(UserError, match=r"^gaussians=abc is invalid"):
        check_argv(["gaussians=abc"])
    check_argv(["gaussians=10", "method=sgi", "train.iterations=1"])  # valid values pass


def test_exit_status_0_1_and_the_failure_summary(tmp_path, capsys):
    ok = folder_of_images(tmp_path)
    code, out, _ = run(["dataset=folder", f"dataset.path={ok}", *TINY, f"hydra.run.dir={tmp_path}/a"], capsys)
    assert code == 0 and "mean (2 ok)" in out
    bad = folder_of_images(tmp_path / "b", bad=True)
    code, _, err = run(
        ["dataset=folder", f"dataset.path={bad}", *TINY, f"hydra.run.dir={tmp_path}/b1"], capsys
    )
    assert code == 1
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("gsbench: 1 image failed; reasons in their records:") and "(broken)" in summary
    record_dir = Path(summary.split("records: ", 1)[1].split(" (")[0])
    assert json.loads((record_dir / "broken.json").read_text())["status"] == "failed"


def test_a_sweep_with_a_failed_image_exits_1(tmp_path, capsys):
    bad = folder_of_images(tmp_path, n=1, bad=True)
    argv = ["-m", "dataset=folder", f"dataset.path={bad}", *TINY, "gaussians=20,30", "sweep_report=false"]
    code, _, err = run([*argv, f"hydra.sweep.dir={tmp_path}/s"], capsys)
    assert code == 1 and "gsbench: 2 images failed" in err


def test_ctrl_c_prints_one_line_with_the_resume_command(tmp_path, capsys, monkeypatch):
    folder = folder_of_images(tmp_path, n=3)
    real = interrupt_nth_image(monkeypatch, 2)
    out_dir = tmp_path / "run"
    argv = ["dataset=folder", f"dataset.path={folder}", *TINY, f"hydra.run.dir={out_dir}"]
    code, _, err = run(argv, capsys)
    assert code == 130 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert (
        line.startswith("gsbench: interrupted; 1 image finished") and "resume with: python -m gsbench" in line
    )
    resume = shlex.split(line.split("resume with: ", 1)[1])[3:]
    assert f"hydra.run.dir={out_dir}" in resume
    from gsbench.runner import job

    monkeypatch.setattr(job, "_run_image", real)
    code, out, _ = run(resume, capsys)
    assert code == 0 and "skipped (already done): 1" in out


def test_image_size_limit_is_gsbench_own_and_configurable(tmp_path):
    """A PNG header claiming 50000 x 50000 is refused by gsbench's limit, not Pillow's bomb check."""
    path = tmp_path / "huge.png"
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = (50000).to_bytes(4, "big") * 2  # IHDR width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # and the chunk's CRC
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"2500\.0 MP > 100 MP, gsbench's limit.*limits\.max_pixels"):
        load_image(path)
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(small)
    with pytest.raises(ImageError, match=r"raise limits\.max_pixels"):
        load_image(small, max_pixels=1000)
    assert load_image(small, max_pixels=1200)[0].shape == (3, 30, 40)


def test_ctrl_c_in_a_sweep_resumes_the_sweep_folder(tmp_path, capsys, monkeypatch):
    folder = folder_of_images(tmp_path, n=1)
    interrupt_nth_image(monkeypatch, 2)  # one image per job: the second job is interrupted
    sweep = tmp_path / "sweep"
    argv = ["-m", "dataset=folder", f"dataset.path={folder}", *TINY, "gaussians=20,30", "sweep_report=false"]
    code, _, err = run([*argv, f"hydra.sweep.dir={sweep}"], capsys)
    assert code == 130 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("gsbench: interrupted; 1 image finished")
    assert line.endswith(f"hydra.sweep.dir={sweep}") and " -m " in line


def test_every_method_and_task_default_config_passes_validation():
    """The shipped defaults of every method/task pair are valid (e.g. ``null`` = follow train.iterations)."""
    from gsbench.methods import METHODS

    for name in METHODS.names():
        for task in METHODS.get(name).tasks:
            check_config(compose_config(f"method={name}", f"task={task}"))
