"""``instant_gi``: Instant GaussianImage (Zeng et al., ICCV 2025) as a gsbench method.

A trained network (``init.checkpoint``) proposes the Gaussians: PPM -> dithered points -> Delaunay
triangles -> one Gaussian per triangle from the MLP fields. They seed a GaussianImage (rs) model that is
fine-tuned for a few iterations (``train.iterations``, default 2,000) or for a wall-clock budget
(``train.seconds``). The record's ``method_info`` holds the count the network chose and PSNR/wall-time
checkpoints (after init, at 2 s and 5 s when reached, at the end) for time-to-quality plots.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import METHODS, FitContext, Method
from ..gi.method import GaussianImageFitted
from ..gi.model import GaussianImageModel
from .checkpoint import file_sha256, load_checkpoint
from .config import InstantGIConfig
from .finetune import Clock, finetune, rs_model_from
from .model import InitGaussians, InitNet
from .points import propose


class InstantGIFitted(GaussianImageFitted):
    """The fine-tuned model plus what the initialisation chose and when each PSNR was reached."""

    def __init__(self, model: GaussianImageModel, options, history: list[dict], extra: dict) -> None:
        super().__init__(model, options, history)
        self.extra = extra

    def info(self) -> dict:
        return {**super().info(), **self.extra}


@torch.no_grad()
def initialise(
    net: InitNet, image: torch.Tensor, budget: int | None, mode: str, kernel_size: int | None = None
) -> tuple[InitGaussians, dict]:
    """Run the network on ``image`` ``[3, H, W]``: its Gaussians and the count facts (see :func:`propose`)."""
    fmap, ppm = net.features(image[None])
    tri, count = propose(ppm, kernel_size or net.cfg.kernel_size, budget, mode)
    return net.gaussians(image[None], fmap, tri), count


@METHODS.register("instant_gi")
class InstantGI(Method):
    """Options: :class:`.config.InstantGIConfig` (``checkpoint`` = ``init.checkpoint``, ``budget_mode``,
    ``kernel_size``, ``lr``, ``lr_step``, ``lr_gamma``, ``loss``); train keys ``iterations``, ``seconds``
    (time-budget mode), ``max_iterations``, ``log_seconds``."""

    name = "instant_gi"
    config_class = InstantGIConfig

    def __init__(self, method_cfg, train_cfg, *args, **kwargs) -> None:
        super().__init__(method_cfg, train_cfg, *args, **kwargs)  # forwards what the base takes (codec_cfg)
        self.mode = self.config.budget_mode
        path = self.config.checkpoint
        self.net, ckpt = load_checkpoint(path)  # fails here, before any image, when missing
        self.ckpt_info = {
            "checkpoint": str(path),
            "checkpoint_sha256": file_sha256(Path(str(path)).expanduser()),
            "checkpoint_data_sha256": ckpt.get("data", {}).get("sha256"),
            "net_config": ckpt["net_config"],
        }

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> InstantGIFitted:
        _, height, width = image.shape
        net = self.net.to(ctx.device)
        clock = Clock(ctx.device)  # the code's training time includes the network's init time
        proposal, count = initialise(net, image, budget, self.mode, self.config.kernel_size or None)
        model = rs_model_from(proposal.xy, proposal.scale, proposal.rotation, proposal.color, height, width)
        init_seconds = clock()
        init = {"label": "init", "seconds": init_seconds, "step": 0, "psnr": clock.psnr(model, image, ctx)}
        ctx.log.info(
            "%s init: %d Gaussians (%d points), %.2f dB in %.2f s",
            ctx.label,
            count["count"],
            count["points"],
            init["psnr"],
            init_seconds,
        )
        marks = [float(s) for s in self.train_cfg.get("log_seconds") or ()]
        # a mark the initialisation already passed is the init state (as the code logs it at step 1)
        checkpoints = [init] + [{**init, "label": f"{m:g}s"} for m in marks if m <= init_seconds]
        seconds = self.train_cfg.get("seconds")
        iterations = int(
            self.train_cfg["iterations"] if seconds is None else self.train_cfg.get("max_iterations", 50000)
        )
        history, more = finetune(
            model,
            image,
            ctx,
            clock,
            iterations=iterations,
            seconds=None if seconds is None else float(seconds),
            log_seconds=tuple(m for m in marks if m > init_seconds),
            lr=self.config.lr,
            lr_step=self.config.lr_step,
            lr_gamma=self.config.lr_gamma,
            loss=self.config.loss,
        )
        extra = {
            "init": {
                **count,
                "budget": budget,
                "budget_mode": self.mode,
                "seconds": init_seconds,
                "psnr": init["psnr"],
            },
            "checkpoints": checkpoints + more,
            **self.ckpt_info,
        }
        return InstantGIFitted(model, ctx.render, history, extra)
