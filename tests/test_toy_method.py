"""The method recipe of docs/extending.md, proven: a toy method (one class, a decoder, one YAML) defined
here, registered for the test, runs through the real runner in process, for both tasks, on a tiny image.

The toy: ``budget`` Gaussians on a regular grid with a fixed round footprint, whose colours alone are
fitted (Adam). Its file stores the colours as float16; the grid follows from (H, W, N) in the header.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from gsbench.codec import DECODERS, Container, encode_container
from gsbench.codec.streams import ByteReader
from gsbench.gaussians import RenderOptions, render
from gsbench.methods import METHODS, Encoded, FitContext, Fitted, Method, Representation
from gsbench.methods.loop import optimise
from gsbench.runner import run_job
from helpers import compose_config

TOY_YAML = """\
# @package _global_
method:
  name: toy
  lr: 0.05        # Adam on the colours
train:
  iterations: 40
"""


def grid(n: int, height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Means ``[n, 2]`` on a regular grid over the image and round covariances ``[n, 3]`` sized to it."""
    cols = max(1, round(math.sqrt(n * width / height)))
    rows = math.ceil(n / cols)
    idx = torch.arange(n, device=device)
    x = (idx % cols + 0.5) * width / cols - 0.5
    y = (idx // cols + 0.5) * height / rows - 0.5
    var = (0.6 * max(width / cols, height / rows)) ** 2
    cov = torch.tensor([var, 0.0, var], device=device).expand(n, 3)
    return torch.stack([x, y], 1), cov


class ToyGaussians(Fitted):
    """Grid Gaussians and their colours: a Representation (render, height, width, counts)."""

    def __init__(self, colors: torch.Tensor, height: int, width: int, options: RenderOptions) -> None:
        self.colors, self.height, self.width, self.options = colors, height, width, options
        self.means, self.cov = grid(colors.shape[0], height, width, colors.device)

    def render(self) -> torch.Tensor:
        return render(self.means, self.cov, self.colors, self.height, self.width, self.options)

    @property
    def num_gaussians(self) -> int:
        return int(self.colors.shape[0])

    @property
    def num_params(self) -> int:
        return int(self.colors.numel())  # only the colours are stored; the grid is implied


class Toy(Method):
    """Grid Gaussians with fitted colours; ``method.lr``, ``train.iterations``."""

    name = "toy"
    tasks = ("represent", "compress")

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> ToyGaussians:
        _, height, width = image.shape
        colors = torch.full((budget, image.shape[0]), 0.5, device=ctx.device, requires_grad=True)
        rep = ToyGaussians(colors, height, width, ctx.render)
        optimizer = torch.optim.Adam([colors], lr=float(self.cfg["lr"]))
        # the shared loop: progress bar, NaN guard (a failed record, not NaN metrics), log, W&B
        optimise(rep.render, image, optimizer, None, int(self.train_cfg["iterations"]), ctx, loss="l2")
        rep.colors = colors.detach()
        return rep

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
        rep = self.fit(image, budget, ctx)
        colors = rep.colors.cpu().numpy().astype("<f2")
        head = bytes([colors.shape[1]])  # channels
        container = Container("toy", rep.height, rep.width, budget, {"COLR": head + colors.tobytes()})
        return Encoded(data=encode_container(container), num_gaussians=budget)


def decode_toy(container: Container, device: torch.device, options: RenderOptions) -> ToyGaussians:
    """Rebuild the toy from its container alone (sizes checked by the reader)."""
    reader = ByteReader(container.section("COLR"), "toy COLR section")
    (channels,) = reader.unpack("B")
    colors = reader.array("<f2", container.num_gaussians * channels).reshape(-1, channels)
    reader.finish()
    tensor = torch.from_numpy(colors.astype(np.float32)).to(device)
    return ToyGaussians(tensor, container.height, container.width, options)


def smooth_image(height: int, width: int) -> np.ndarray:
    """``uint8 [H, W, 3]``: ramps in x and y, and their mean."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / (width - 1), y / (height - 1), (x / (width - 1) + y / (height - 1)) / 2], -1)
    return (rgb * 200 + 28).round().astype(np.uint8)


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """Register the toy method and its decoder for one test, and a config folder holding its YAML."""
    # the registries have no removal on purpose; the test restores them by hand
    monkeypatch.setitem(METHODS._items, "toy", Toy)
    monkeypatch.setitem(DECODERS._items, "toy", decode_toy)
    configs = tmp_path / "configs"
    (configs / "method").mkdir(parents=True)
    (configs / "method" / "toy.yaml").write_text(TOY_YAML)
    return configs


@pytest.mark.parametrize("task", ["represent", "compress"])
def test_toy_method_runs_through_the_runner(toy, task, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(smooth_image(16, 24)).save(folder / "ramp.png")
    cfg = compose_config(
        "method=toy",
        f"hydra.searchpath=[file://{toy}]",  # the YAML lives outside configs/: Hydra finds it here
        f"task={task}",
        "dataset=folder",
        f"dataset.path={folder}",
        "gaussians=24",
        "device=cpu",
        "progress=false",
        "task.fps_warmup=1",
        "task.fps_repeats=1",
        "metrics.names=[psnr,ssim]",
    )
    result = run_job(cfg, tmp_path / "out")
    assert not result.failed
    (path,) = result.records_dir.glob("*.json")
    rec = json.loads(path.read_text())
    assert (rec["status"], rec["method"], rec["task"], rec["budget"]) == ("ok", "toy", task, 24)
    assert rec["num_gaussians"] == 24
    assert rec["metrics"]["psnr"] > 18  # the colours were fitted: the initial grey scores under 10 dB
    if task == "compress":
        file = result.records_dir / rec["bitstream"]
        assert file.suffix == ".gsb" and rec["bpp"] == file.stat().st_size * 8 / (16 * 24)
        from gsbench.methods import decode_bitstream

        decoded = decode_bitstream(file.read_bytes())
        assert isinstance(decoded, Representation) and decoded.render().shape == (3, 16, 24)
