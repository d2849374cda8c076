"""COIN (Dupont et al., 2021): an image stored as the float16 weights of a SIREN overfitted to it.

As in the paper and its public code (EmilienDupont/coin, see docs/baselines.md): an MLP from pixel
coordinates in [-1, 1] to RGB with ``layers`` sine layers of width ``hidden`` (``sin(w0 (W x + b))``,
w0 = 30, first layer included) and a linear output layer; SIREN initialisation (first layer
``U(-1/d_in, 1/d_in)``, others ``U(-sqrt(6/d_in)/w0, sqrt(6/d_in)/w0)``, biases alike as in the COIN code);
full-batch MSE on the raw output, Adam at lr 2e-4; the weights with the best PSNR (clamped, 8-bit) seen in
the second half of training are kept; the file holds them as float16. The budget is the parameter count
(``method.hidden`` x ``method.layers``); the ``gaussians`` key is ignored.

Bitstream (a gsbench container, method ``coin``, N = 0): section ``ARCH`` = ``hidden u16, layers u16,
in u8 (2), out u8 (3), w0 f32, w0_initial f32`` and section ``WGTS`` = every layer's weight (row-major,
``[out, in]``) then bias, as float16 little-endian. The decoder evaluates the net in float32 from the
float16 weights (COIN evaluated in float16 on a GPU).
"""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import numpy as np
import torch
from torch import nn

from ..codec import DECODERS, BitstreamError, Container, check_output, encode_container
from ..codec.guard import check_memory, flush_denormals
from ..codec.streams import ByteReader
from ..errors import UserError
from ..gaussians.render import RenderOptions
from .base import METHODS, Decoded, Encoded, FitContext, Fitted, Method, psnr_from_mse
from .loop import optimise

IN_DIM, OUT_DIM = 2, 3
MAX_HIDDEN, MAX_LAYERS = 1024, 64  # what a decoder accepts
ARCH_FORMAT = "<HHBBff"
W0_RANGE = (1e-3, 1e4)  # SIREN frequencies a decoder accepts
RENDER_CHUNK = 1 << 16  # pixels per forward pass when rendering (bounds memory for large images)


def num_params(hidden: int, layers: int, in_dim: int = IN_DIM, out_dim: int = OUT_DIM) -> int:
    """Scalars of a COIN SIREN: ``layers`` sine layers of width ``hidden`` plus the linear output layer."""
    first = (in_dim + 1) * hidden
    middle = (layers - 1) * (hidden + 1) * hidden
    last = (hidden + 1) * out_dim
    return first + middle + last


class Siren(nn.Module):
    """``layers`` sine layers ``sin(w0 (W x + b))`` of width ``hidden``, then a linear layer to RGB."""

    def __init__(
        self,
        hidden: int,
        layers: int,
        w0: float = 30.0,
        w0_initial: float = 30.0,
        seed: int | None = 0,
        in_dim: int = IN_DIM,
        out_dim: int = OUT_DIM,
    ) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"COIN needs hidden >= 1 and layers >= 1, got {hidden} and {layers}")
        self.hidden, self.layers, self.w0, self.w0_initial = hidden, layers, float(w0), float(w0_initial)
        dims = [in_dim] + [hidden] * layers + [out_dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        if seed is not None:
            self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int) -> None:
        """The SIREN initialisation as in the COIN code (biases drawn like the weights)."""
        gen = torch.Generator().manual_seed(seed)
        for i, lin in enumerate(self.linears):
            fan_in = lin.in_features
            # the output layer is initialised as a hidden layer (COIN's last SirenLayer uses w0 too)
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / self.w0
            for p in (lin.weight, lin.bias):
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``[P, 2]`` coordinates -> ``[P, 3]`` raw RGB."""
        x = coords
        for i, lin in enumerate(self.linears[:-1]):
            x = torch.sin((self.w0_initial if i == 0 else self.w0) * lin(x))
        return self.linears[-1](x)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def render(self, height: int, width: int, chunk: int = RENDER_CHUNK) -> torch.Tensor:
        """The image ``[3, H, W]`` (raw), evaluated ``chunk`` pixels at a time."""
        coords = coordinates(height, width, self.linears[0].weight.device)
        out = torch.cat([self.forward(c) for c in coords.split(chunk)])
        return out.T.reshape(OUT_DIM, height, width)


def coordinates(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel centres as ``[H W, 2]`` (row, column), each axis mapped linearly onto [-1, 1], row-major.

    (COIN's code divides both axes by ``H - 1``, so a landscape image's columns reach past 1; gsbench
    maps each axis onto [-1, 1], as the paper describes.)
    """
    ys = torch.linspace(-1, 1, height, device=device) if height > 1 else torch.zeros(1, device=device)
    xs = torch.linspace(-1, 1, width, device=device) if width > 1 else torch.zeros(1, device=device)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2)


def clamped_psnr(out: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of the output clamped to [0, 1] and rounded to 8 bits (COIN's model selection)."""
    recon = (out.clamp(0, 1) * 255).round() / 255
    return psnr_from_mse(torch.mean((recon - target) ** 2).item())


class CoinFitted(Fitted):
    """A fitted SIREN (float32 weights) and the image size it renders."""

    def __init__(self, model: Siren, height: int, width: int, history: list[dict], best: dict) -> None:
        self.model, self.height, self.width, self.history, self.best = model, height, width, history, best

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        return self.model.render(self.height, self.width)

    @property
    def num_gaussians(self) -> int:
        return 0

    @property
    def num_params(self) -> int:
        return self.model.num_params

    def info(self) -> dict[str, Any]:
        m = self.model
        return {
            "hidden": m.hidden,
            "layers": m.layers,
            "w0": m.w0,
            "w0_initial": m.w0_initial,
            "best": self.best,
            "history": self.history,
        }


class DecodedCoin(Decoded):
    """A SIREN rebuilt from a file."""

    num_gaussians = 0

    def __init__(self, model: Siren, height: int, width: int) -> None:
        self.model, self.height, self.width = model, height, width

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        return check_output("coin bitstream", self.model.render(self.height, self.width))

    @property
    def num_params(self) -> int:
        return self.model.num_params


def pack(model: Siren, height: int, width: int) -> bytes:
    """The container for ``model`` with its weights rounded to float16."""
    arch = struct.pack(ARCH_FORMAT, model.hidden, model.layers, IN_DIM, OUT_DIM, model.w0, model.w0_initial)
    flat = torch.cat(
        [p.detach().reshape(-1).float().cpu() for lin in model.linears for p in (lin.weight, lin.bias)]
    )
    half = flat.numpy().astype("<f2")
    if not np.isfinite(half).all():
        raise ValueError("COIN weights overflow float16 (|w| > 65504); the fit diverged")
    container = Container("coin", height, width, 0, {"ARCH": arch, "WGTS": half.tobytes()})
    return encode_container(container)


@DECODERS.register("coin")
def decode_coin(
    container: Container, device: torch.device, options: RenderOptions | None = None
) -> DecodedCoin:
    """Rebuild the SIREN from the ``ARCH`` and ``WGTS`` sections; sizes are checked before allocating."""
    if container.num_gaussians != 0:
        n = container.num_gaussians
        raise BitstreamError(f"corrupt coin bitstream: the header says {n} Gaussians, not 0")
    reader = ByteReader(container.section("ARCH"), "coin ARCH section")
    hidden, layers, in_dim, out_dim, w0, w0_initial = reader.unpack(ARCH_FORMAT[1:])
    reader.finish()
    if (in_dim, out_dim) != (IN_DIM, OUT_DIM):
        raise BitstreamError(f"corrupt coin bitstream: a {in_dim}->{out_dim} net (expected 2 -> 3)")
    if not (1 <= hidden <= MAX_HIDDEN and 1 <= layers <= MAX_LAYERS):
        raise BitstreamError(
            f"corrupt coin bitstream: {layers} layers of width {hidden} "
            f"(accepted: 1..{MAX_LAYERS} layers, width 1..{MAX_HIDDEN})"
        )
    # w0 near 1e-38 makes every product subnormal (a 30 s decode); real nets use 1..100
    if not (
        math.isfinite(w0)
        and math.isfinite(w0_initial)
        and W0_RANGE[0] <= min(w0, w0_initial)
        and max(w0, w0_initial) <= W0_RANGE[1]
    ):
        raise BitstreamError(f"corrupt coin bitstream: invalid w0 ({w0}, {w0_initial})")
    count = num_params(hidden, layers)
    weights = container.section("WGTS")
    if len(weights) != 2 * count:  # checked before anything is allocated: bounded by the file's size
        raise BitstreamError(
            f"corrupt coin bitstream: WGTS holds {len(weights)} bytes; "
            f"a net of {layers} layers of width {hidden} needs {2 * count}"
        )
    macs, budget = count * container.height * container.width, container.limits.max_macs_per_pixel
    if count > budget:  # one forward pass per pixel: refuse before minutes of evaluation
        raise BitstreamError(
            f"implausible coin bitstream: {count} multiply-adds per pixel, {macs:.3g} in all "
            f"(limit {budget} per pixel, limits.max_macs_per_pixel)"
        )
    # coordinates and the output (float32, 2 + 3 per pixel, twice for the concatenation) plus the
    # activations of one chunk of pixels
    memory = container.height * container.width * 5 * 4 * 2 + RENDER_CHUNK * hidden * 4 * 2
    check_memory("coin bitstream", memory, container.limits)
    flat = ByteReader(weights, "coin WGTS section").array("<f2", count)
    if not np.isfinite(flat).all():
        raise BitstreamError("corrupt coin bitstream: non-finite weights")
    model = Siren(hidden, layers, w0, w0_initial, seed=None)
    values = torch.from_numpy(flat.astype(np.float32))
    flush_denormals(values)
    pos = 0
    with torch.no_grad():
        for lin in model.linears:
            for p in (lin.weight, lin.bias):
                p.copy_(values[pos : pos + p.numel()].reshape(p.shape))
                pos += p.numel()
    return DecodedCoin(model.to(device), container.height, container.width)


@METHODS.register("coin")
class Coin(Method):
    """COIN; config keys: ``hidden``, ``layers`` (the budget), ``w0``, ``w0_initial``, ``lr``, ``keep_best``.

    The budget is the parameter count; ``train.iterations`` steps of full-batch Adam.
    """

    name = "coin"
    tasks = ("represent", "compress")
    budget_name = "params"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # sets self.cfg (the method node) and self.train_cfg
        self.hidden, self.layers = int(self.cfg.get("hidden", 28)), int(self.cfg.get("layers", 10))
        if not (1 <= self.hidden <= MAX_HIDDEN and 1 <= self.layers <= MAX_LAYERS):
            raise UserError(
                f"coin: method.hidden must be in 1..{MAX_HIDDEN} and method.layers in 1..{MAX_LAYERS}, "
                f"got {self.hidden} and {self.layers}"
            )

    def budget(self, gaussians: int) -> int:
        """The number of parameters of the ``hidden`` x ``layers`` net (the ``gaussians`` key is ignored)."""
        return num_params(self.hidden, self.layers)

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> CoinFitted:
        _, height, width = image.shape
        model = Siren(
            self.hidden,
            self.layers,
            float(self.cfg.get("w0", 30.0)),
            float(self.cfg.get("w0_initial", 30.0)),
            seed=ctx.seed,
        ).to(ctx.device)
        coords = coordinates(height, width, ctx.device)
        target = image.reshape(image.shape[0], -1).T  # [H W, 3]
        iterations = int(self.train_cfg["iterations"])
        keep_best = bool(self.cfg.get("keep_best", True))
        best: dict[str, Any] = {"psnr": -math.inf, "step": None}
        best_state: dict[str, torch.Tensor] = {}
        step = 0

        def forward() -> torch.Tensor:
            # the output of step `step` comes from the weights before that step's update: snapshot those
            nonlocal step
            step += 1
            out = model(coords)
            if keep_best and step > iterations // 2:
                with torch.no_grad():
                    psnr = clamped_psnr(out, target)
                if psnr > best["psnr"]:
                    best.update(psnr=psnr, step=step - 1)
                    best_state.update({k: v.detach().clone() for k, v in model.state_dict().items()})
            return out

        optimizer = torch.optim.Adam(model.parameters(), lr=float(self.cfg.get("lr", 2e-4)))
        history = optimise(forward, target, optimizer, None, iterations, ctx, loss="l2")
        with torch.no_grad():
            final = clamped_psnr(model(coords), target)
        if keep_best and best_state and best["psnr"] > final:
            model.load_state_dict(best_state)
        else:
            best.update(psnr=final, step=iterations)
        return CoinFitted(model, height, width, history, best)

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
        fitted = self.fit(image, budget, ctx)
        data = pack(fitted.model, fitted.height, fitted.width)
        decoded = decode_coin(_container(data), ctx.device)  # the encoder's preview is the decoder's net
        pixels = fitted.height * fitted.width
        info = fitted.info()
        info["description"] = (
            f"COIN SIREN, {self.layers} sine layers of width {self.hidden} + linear output "
            f"({budget} parameters), float16 weights, w0 {fitted.model.w0:g}"
        )
        return Encoded(
            data=data,
            num_gaussians=0,
            bpp_payload=budget * 16 / pixels,
            info=info,
            preview=decoded.render,
        )


def _container(data: bytes) -> Container:
    from ..codec import decode_container

    return decode_container(data)
