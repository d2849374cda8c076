"""Image-GS's learning-rate schedules: the paper's constant rates and the code's plateau decay with its
early stop (``method.schedule=code``)."""

from __future__ import annotations

import torch

from gsbench.methods import FitContext, get_method
from gsbench.methods.image_gs.schedule import PlateauDecay


def test_plateau_decays_then_stops_as_the_code():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1.0)
    p = PlateauDecay(every=100, patience=300, ratio=10.0, max_decays=1, threshold=1e-3)
    assert not p.due(100, full=False) and p.due(200, full=True) and not p.due(250, full=True)
    assert not p.update(100, 30.0, 0.90, opt)  # first evaluation: the best so far
    # PSNR improves but SSIM does not by 1e-3: counted as no improvement (both must improve)
    assert not p.update(200, 31.0, 0.9005, opt) and p.waited == 100
    assert not p.update(300, 31.0, 0.9005, opt)
    assert not p.update(400, 31.0, 0.9005, opt)  # 300 steps without improvement: decay
    assert p.decays == [400] and opt.param_groups[0]["lr"] == 0.1 and p.waited == 0
    assert not p.update(500, 40.0, 0.99, opt) and p.best_psnr == 40.0  # real improvement resets
    for step in (600, 700):
        assert not p.update(step, 40.0, 0.99, opt)
    assert p.update(800, 40.0, 0.99, opt) and p.stopped_at == 800  # past max_decays: stop
    assert opt.param_groups[0]["lr"] == 0.1
    assert p.facts() == {"kind": "code", "decays": [400], "stopped_at": 800}


def test_code_schedule_in_a_fit_records_what_ran():
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    cfg = {"schedule": "code", "eval_every": 2, "decay_patience": 2, "decay_threshold": 10.0}
    method = get_method("image_gs", cfg, {"iterations": 40})
    info = method.fit(image, 20, FitContext(progress=False, log_every=0)).info()
    lr = info["schedule"]["lr"]
    # with an unreachable threshold nothing counts as improvement: decay at the first full evaluation
    # plus the patience, then stop at the next one
    assert lr["kind"] == "code" and len(lr["decays"]) == 1 and lr["stopped_at"] == lr["decays"][0] + 2
    assert info["schedule"]["iterations_run"] == lr["stopped_at"] < 40
    paper = get_method("image_gs", {}, {"iterations": 6}).fit(image, 20, FitContext(progress=False)).info()
    assert paper["schedule"]["lr"] == {"kind": "paper (constant)"}
    assert paper["schedule"]["iterations_run"] == 6
