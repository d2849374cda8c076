"""COIN (Dupont et al., 2021): an image stored as the float16 weights of a SIREN overfitted to it.

As in the paper and its public code (EmilienDupont/coin, see docs/baselines.md): an MLP from pixel
coordinates in [-1, 1] to RGB with ``layers`` sine layers of width ``hidden`` (``sin(w0 (W x + b))``,
w0 = 30, first layer included) and a linear output layer; SIREN initialisation (first layer
``U(-1/d_in, 1/d_in)``, others ``U(-sqrt(6/d_in)/w0, sqrt(6/d_in)/w0)``, biases alike as in the COIN code);
full-batch MSE on the raw output, Adam at lr 2e-4; the weights with the best PSNR (clamped, 8-bit) seen in
the second half of training are kept; the file holds them as float16. The budget is the parameter count
(``method.hidden`` x ``method.layers``); the ``gaussians`` key is ignored.

The bitstream and its decoder: :mod:`.codec`; the network: :mod:`.model`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..base import METHODS, Encoded, FitContext, Fitted, Method, psnr_from_mse
from ..loop import optimise
from .codec import decode_coin, pack, read_container
from .config import CoinConfig
from .model import Siren, coordinates, num_params


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


@METHODS.register("coin")
class Coin(Method):
    """COIN; options: :class:`.config.CoinConfig` (``hidden`` x ``layers`` is the budget).

    The budget is the parameter count; ``train.iterations`` steps of full-batch Adam.
    """

    name = "coin"
    tasks = ("represent", "compress")
    budget_name = "params"
    config_class = CoinConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # sets self.cfg (the method node), self.config and self.train_cfg
        self.hidden, self.layers = self.config.hidden, self.config.layers

    def budget(self, gaussians: int) -> int:
        """The number of parameters of the ``hidden`` x ``layers`` net (the ``gaussians`` key is ignored)."""
        return num_params(self.hidden, self.layers)

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> CoinFitted:
        _, height, width = image.shape
        model = Siren(
            self.hidden,
            self.layers,
            self.config.w0,
            self.config.w0_initial,
            seed=ctx.seed,
        ).to(ctx.device)
        coords = coordinates(height, width, ctx.device)
        target = image.reshape(image.shape[0], -1).T  # [H W, 3]
        iterations = int(self.train_cfg["iterations"])
        keep_best = self.config.keep_best
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

        optimizer = torch.optim.Adam(model.parameters(), lr=self.config.lr)
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
        decoded = decode_coin(read_container(data), ctx.device)  # the encoder's preview is the decoder's net
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
