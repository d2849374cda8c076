"""The declared Method interface: every registered method declares it, and what fits and decoders return
satisfies the one Representation protocol (tiny fits: a few iterations on a 32 x 32 image)."""

from __future__ import annotations

import re

import pytest
import torch

from gsbench.codec import DECODERS
from gsbench.errors import UserError
from gsbench.methods import METHODS, FitContext, Method, Representation, get_method, methods_for_task
from gsbench.methods.base import TASK_NAMES
from helpers import compose_config

# Needs a trained initialisation network (tests/test_instant_gi.py trains a tiny one for its own tests).
NEEDS_CHECKPOINT = {"instant_gi"}
TINY = ["train.iterations=4", "gaussians=40", "device=cpu"]
EXTRA = {
    "gi": ["codec.qat_iterations=4"],  # its codec fine-tunes for its own count of iterations
    "coin": ["method.hidden=8", "method.layers=2"],
}


def image(h: int = 32, w: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, h, w, generator=g)


def build(name: str, task: str) -> Method:
    cfg = compose_config(f"method={name}", f"task={task}", *TINY, *EXTRA.get(name, []))
    try:
        return get_method(cfg.method.name, cfg.method, cfg.train, cfg.get("codec"))
    except UserError as exc:  # a classical codec whose library is not installed here
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_declares_tasks_suffix_and_budget(name):
    cls = METHODS.get(name)
    assert cls.name == name
    assert cls.tasks and set(cls.tasks) <= set(TASK_NAMES), cls.tasks
    # a method lists compress exactly when it implements it
    assert ("compress" in cls.tasks) == (cls.compress is not Method.compress), cls.tasks
    assert re.fullmatch(r"\.[a-z0-9]+", cls.file_suffix), cls.file_suffix
    assert re.fullmatch(r"[a-z_]+", cls.budget_name), cls.budget_name


def test_methods_for_task_reads_the_registry():
    compress = methods_for_task("compress")
    assert {"gi", "gi_pp", "image_gs", "sgi", "coin", "jpeg", "webp", "avif", "jxl"} <= set(compress)
    assert "instant_gi" not in compress
    represent = methods_for_task("represent")
    assert "jpeg" not in represent and {"gi", "instant_gi"} <= set(represent)
    assert methods_for_task("nope") == []


def test_a_method_without_a_codec_names_the_ones_that_have_one():
    cls = METHODS.get("instant_gi")
    method = cls.__new__(cls)  # no checkpoint needed to reach the base class's compress
    with pytest.raises(UserError, match=r"has no compress task; .*coin.*sgi"):
        Method.compress(method, image(), 1, FitContext())


def test_the_runner_refuses_a_task_the_method_does_not_declare(tmp_path):
    from gsbench.runner import run_job

    cfg = compose_config("method=jpeg", "task=represent", "dataset=samples", *TINY)
    with pytest.raises(UserError, match=r"supports task=compress, not 'represent' \(methods for task=repr"):
        run_job(cfg, tmp_path)


@pytest.mark.parametrize("name", [n for n in methods_for_task("represent") if n not in NEEDS_CHECKPOINT])
def test_fitted_results_are_representations(name):
    method = build(name, "represent")
    img = image()
    fitted = method.fit(img, method.budget(40), FitContext(progress=False, log_every=0))
    check_representation(fitted, img)
    assert fitted.num_params > 0


@pytest.mark.parametrize("name", methods_for_task("compress"))
def test_decoded_results_are_representations(name):
    method = build(name, "compress")
    img = image()
    ctx = FitContext(progress=False, log_every=0)
    encoded = method.compress(img, method.budget(40), ctx)
    decoded = method.decode(encoded.data, ctx)
    check_representation(decoded, img)
    assert decoded.num_params >= 0


def test_every_decoder_belongs_to_a_method_with_a_compress_task():
    assert set(DECODERS.names()) <= set(methods_for_task("compress"))


def check_representation(rep, img: torch.Tensor) -> None:
    assert isinstance(rep, Representation), type(rep)
    assert (rep.height, rep.width) == tuple(img.shape[1:])
    assert isinstance(rep.num_gaussians, int) and rep.num_gaussians >= 0
    assert isinstance(rep.num_params, int)
    with torch.no_grad():
        out = rep.render()
    assert out.shape == img.shape and torch.isfinite(out).all()


def test_the_bitstream_package_alone_imports_no_method():
    """At run time too: gsbench.codec imports no method, and says what to import to decode a file."""
    import subprocess
    import sys

    code = """
import sys
from gsbench.codec import BitstreamError, Container, decode_bitstream, encode_container
assert not any(m.startswith("gsbench.methods") for m in sys.modules), "gsbench.codec imported a method"
try:
    decode_bitstream(encode_container(Container("gi", 4, 4, 1, {})))
except BitstreamError as exc:
    print(exc)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no decoder for method 'gi'" in res.stdout and "import gsbench.methods first" in res.stdout
