"""Resumable fits: an interrupted gi / gi_pp fit goes on from its checkpoint to the same result."""

from __future__ import annotations

import signal

import pytest
import torch

from gsbench.gaussians import RenderOptions
from gsbench.methods import FitContext, get_method
from gsbench.methods.loop import Hook, TrainState, train

H, W = 20, 28
CONFIGS = {  # name: (method config, iterations, the step interrupted: gi_pp grows again after it)
    "gi": ({"name": "gi", "lr": 0.01}, 30, 23),
    "gi_pp": ({"name": "gi_pp", "grow_every": 10, "snapshot_every": 7, "lr": 0.018}, 30, 13),
}


def image() -> torch.Tensor:
    return torch.rand(3, H, W, generator=torch.Generator().manual_seed(3))


def ctx(tmp_path=None, **kw) -> FitContext:
    opts = RenderOptions(backend="torch")
    return FitContext(progress=False, log_every=5, label="img", render=opts, checkpoint_dir=tmp_path, **kw)


class InterruptAt(Hook):
    """Sends the process a SIGINT (a Ctrl-C) during step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def before_step(self, state) -> None:
        if state.step == self.step:
            signal.raise_signal(signal.SIGINT)


def fit(name: str, c: FitContext, interrupt: int | None = None, monkeypatch=None):
    cfg, iterations, _ = CONFIGS[name]
    method = get_method(name, cfg, {"iterations": iterations})
    if interrupt is not None:  # the interrupt hook runs first in the fit's loop
        original = train

        def with_interrupt(state, n, context, hooks=(), **kw):
            return original(state, n, context, [InterruptAt(interrupt), *hooks], **kw)

        monkeypatch.setattr("gsbench.methods.loop.train", with_interrupt)
    torch.manual_seed(0)
    return method.fit(image(), 40, c)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_interrupted_fit_resumes_to_the_same_result(name, tmp_path, monkeypatch):
    whole = fit(name, ctx())
    c = ctx(tmp_path, checkpoint_every=1e9)  # only the Ctrl-C saves
    with pytest.raises(KeyboardInterrupt):
        fit(name, c, interrupt=CONFIGS[name][2], monkeypatch=monkeypatch)
    saved = tmp_path / "img.fit.resume.pt"
    assert saved.is_file()
    monkeypatch.undo()
    resumed = fit(name, c)
    assert not saved.exists()  # the finished fit removes its checkpoint
    with torch.no_grad():
        assert torch.equal(resumed.render(), whole.render())
    info_whole, info_resumed = whole.info(), resumed.info()
    assert "resumed_from_step" not in info_whole and info_resumed["resumed_from_step"] == CONFIGS[name][2]
    assert info_resumed["seconds_before_resume"] > 0  # the fit's clock goes on from the earlier run's
    secs = [h["seconds"] for h in info_resumed["history"]]
    assert secs == sorted(secs)
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert strip(info_whole["history"]) == strip(info_resumed["history"])


def test_periodic_saves_and_a_foreign_checkpoint_is_ignored(tmp_path, caplog):
    c = ctx(tmp_path, checkpoint_every=1e-9)  # a save after every step
    target = image()
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    from gsbench.methods.resume import fit_checkpoint

    ck = fit_checkpoint(c, "toy", {"model": model}, target, what="toy")
    state = TrainState(lambda: model.weight.expand(3, H, W) * 0 + model.bias, torch.nn.functional.mse_loss,
                       target, opt)  # fmt: skip

    class Stop(Hook):
        def after_step(self, s) -> None:
            s.stop = s.step == 4

    train(state, 10, c, [Stop()], checkpoint=ck)
    assert not (tmp_path / "img.toy.resume.pt").exists()  # the loop ended: no file left
    ck.save(state, [])
    other = fit_checkpoint(c, "toy", {"model": model}, target, what="another fit")
    assert other.restore(state, [], c) == 0
    assert "from another fit" in caplog.text
    same = fit_checkpoint(c, "toy", {"model": model}, target, what="toy")
    assert same.restore(TrainState(state.forward, state.loss, target, opt), [], c) == 4


def test_checkpoints_are_off_without_a_directory():
    from gsbench.methods.resume import fit_checkpoint

    assert fit_checkpoint(ctx(), "fit", {}, image()) is None
    assert fit_checkpoint(ctx(checkpoint_every=0), "fit", {}, image()) is None
