"""Image-GS (Zhang et al., SIGGRAPH 2025): content-adaptive 2D Gaussians with top-K normalised rendering.

Per Gaussian: position in [0, 1]^2, two scales (optimised as inverse scales), an angle and ``C`` colour
channels; no opacity (attribute format in :mod:`.codec`). Positions start where the image
gradient is large (Eq. 6, ``lambda_init`` uniform), colours from the target there, scale 5 px, angle 0.
Loss ``L1 + 0.1 (1 - SSIM)``, Adam (position 5e-4, colour 5e-3, scale 2e-3, rotation 2e-3). Training
starts with half the budget and adds the rest in ``add_times`` equal steps every ``add_every`` iterations
at pixels drawn in proportion to the error (Eq. 7), recording PSNR at each step (the level-of-detail
curve). Every choice and its config key: ``docs/methods_image_gs.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as ssim_fn

from ...gaussians.ssim_loss import ssim_loss  # pytorch_msssim's SSIM, with its blurs fast on a CPU
from ..base import METHODS, Encoded, FitContext, Method, ModelFitted, psnr_from_mse
from ..loop import Every, Hook, TrainState, train
from .codec import ImageGSDecoded, encode
from .config import ImageGSConfig
from .model import error_guided, initial_model
from .schedule import PlateauDecay, plan_schedule


def psnr_of(render: torch.Tensor, image: torch.Tensor) -> float:
    return psnr_from_mse(F.mse_loss(render.detach().clamp(0, 1), image).item())


class ImageGSFitted(ModelFitted):
    """A fitted Image-GS model, the renderer options it was fitted with, and its training facts."""

    @property
    def num_params(self) -> int:
        return self.model.values(quantised=False).numel()


class Additions(Hook):
    """Progressive addition (Eq. 7): at each scheduled step, record the level-of-detail point, then add
    Gaussians at pixels drawn by the error and rebuild Adam (the new rows start with zero moments)."""

    def __init__(self, model, image, adds: dict[int, int], cfg: ImageGSConfig, gen, ctx, lod_entry) -> None:
        self.model, self.image, self.adds, self.cfg, self.gen, self.ctx = model, image, adds, cfg, gen, ctx
        self.lod_entry, self.lod = lod_entry, []

    def after_step(self, state) -> None:
        n = self.adds.get(state.step)
        if n is None:
            return
        with torch.no_grad():
            current = self.model.render(self.ctx.render).clamp(0, 1)
            self.lod.append(self.lod_entry(state.step, psnr_of(current, self.image)))
            self.model.append(*error_guided(self.image, current, n, self.cfg, self.gen))
        state.optimizer = self.model.optimizer(state.optimizer)

    def log_fields(self, state) -> dict[str, Any]:
        return {"num_gaussians": self.model.num_gaussians}


class Plateau(Hook):
    """The code's schedule: evaluate every ``eval_every`` steps once the budget is reached, divide the
    learning rates on a plateau, stop after the last division."""

    def __init__(self, method, plateau: PlateauDecay, model, image, budget: int, ctx) -> None:
        self.method, self.plateau, self.model, self.image, self.budget, self.ctx = (
            method, plateau, model, image, budget, ctx
        )

    def after_step(self, state) -> None:
        if self.plateau.due(state.step, self.model.num_gaussians == self.budget):
            state.stop = self.method.plateau_check(
                self.plateau, state.step, self.model, self.image, state.optimizer, self.ctx
            )


@METHODS.register("image_gs")
class ImageGS(Method):
    """Image-GS; every key of :class:`ImageGSConfig` is a ``method.*`` option."""

    name = "image_gs"
    tasks = ("represent", "compress")

    def __init__(self, method_cfg: Mapping[str, Any], train_cfg: Mapping[str, Any], codec_cfg=None) -> None:
        super().__init__(method_cfg, train_cfg, codec_cfg)
        # compress-task keys (bits, entropy, qat) live in the ``codec`` node, as for the other methods
        self.config = ImageGSConfig.from_mapping({**self.cfg, **self.codec_cfg})

    def bpp_payload(self, n: int, channels: int, height: int, width: int) -> float:
        """The paper's count: ``(5 + C)`` attributes of ``bits`` bits per Gaussian, per pixel."""
        return (5 + channels) * self.config.bits * n / (height * width)

    def loss(self, out: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        c = self.config
        loss = c.l1_weight * F.l1_loss(out, image)
        side = min(image.shape[1:])
        win = min(11, side if side % 2 else side - 1)  # SSIM's 11-px window, smaller on tiny images
        if c.ssim_weight and win >= 3:
            loss = loss + c.ssim_weight * (1 - ssim_loss(out[None], image[None], win_size=win))
        return loss

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> ImageGSFitted:
        cfg, (C, H, W) = self.config, image.shape
        iterations = int(self.train_cfg["iterations"])
        sched = plan_schedule(int(budget), iterations, cfg)
        if sched.rescaled:
            ctx.log.warning(
                "%s: %d iterations are too few for additions every %d steps; adding every %d instead",
                ctx.label or "image_gs",
                iterations,
                cfg.add_every,
                sched.add_every,
            )
        gen = torch.Generator().manual_seed(int(ctx.seed))
        model = initial_model(image, sched.initial, cfg, gen)
        plateau = None
        if cfg.schedule == "code":
            plateau = PlateauDecay(
                cfg.eval_every, cfg.decay_patience, cfg.decay_ratio, cfg.max_decays, cfg.decay_threshold
            )

        def lod_entry(step: int, psnr: float) -> dict[str, Any]:
            n = model.num_gaussians
            payload = self.bpp_payload(n, C, H, W)
            return {"step": step, "num_gaussians": n, "psnr": psnr, "bpp_payload": payload}

        additions = Additions(model, image, dict(sched.additions), cfg, gen, ctx, lod_entry)
        hooks: list[Hook] = [Every(lambda step: model.clip_())]
        if plateau is not None:
            hooks.append(Plateau(self, plateau, model, image, sched.budget, ctx))
        hooks.append(additions)
        state = TrainState(lambda: model.render(ctx.render), self.loss, image, model.optimizer())
        history = train(state, iterations, ctx, hooks)
        last, lod = state.step, additions.lod
        with torch.no_grad():
            lod.append(lod_entry(last, psnr_of(model.render(ctx.render), image)))
            prefix = []
            if cfg.lod_prefix:
                for n in sched.counts():
                    psnr = psnr_of(model.render(ctx.render, first=n), image)
                    prefix.append(
                        {"num_gaussians": n, "psnr": psnr, "bpp_payload": self.bpp_payload(n, C, H, W)}
                    )
        flags = ("init", "color_init", "inverse_scale", "topk_norm", "k", "eps", "cutoff", "footprint")
        facts = {
            **{k: v for k, v in asdict(cfg).items() if k in flags},
            "render_mode": cfg.mode,
            "channels": C,
            "schedule": {
                "initial": sched.initial,
                "additions": [list(a) for a in sched.additions],
                "add_every": sched.add_every,
                "rescaled": sched.rescaled,
                "lr": plateau.facts() if plateau is not None else {"kind": "paper (constant)"},
                "iterations_run": last,
            },
            "lod": lod,
            "lod_prefix": prefix,
            "history": history,
        }
        return ImageGSFitted(model, ctx.render, facts)

    @torch.no_grad()
    def plateau_check(self, plateau: PlateauDecay, step: int, model, image, opt, ctx: FitContext) -> bool:
        """One evaluation of the code's schedule on the clamped render; True: stop training here."""
        out = model.render(ctx.render).clamp(0, 1)
        side = min(image.shape[1:])
        win = min(11, side if side % 2 else side - 1)
        ssim = float(ssim_fn(out[None], image[None], data_range=1.0, win_size=win)) if win >= 3 else 0.0
        stop = plateau.update(step, psnr_of(out, image), ssim, opt)
        if plateau.decays and plateau.decays[-1] == step:
            ctx.log.info("%s: learning rates divided by %g at step %d", ctx.label, plateau.ratio, step)
        return stop

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
        """Fit, quantise every attribute min-max to ``bits`` bits, write the bitstream."""
        cfg, (C, H, W) = self.config, image.shape
        fitted = self.fit(image, budget, ctx)
        model = fitted.model
        values = model.values(quantised=False).detach()
        data, deq = encode(values, H, W, cfg.spec, bits=cfg.bits, entropy=cfg.entropy)
        decoded = ImageGSDecoded(deq, H, W, ctx.render, cfg.spec)
        n = model.num_gaussians
        with torch.no_grad():
            psnr_float, psnr_quant = psnr_of(fitted.render(), image), psnr_of(decoded.render(), image)
        info = {
            **fitted.info(),
            "bits": cfg.bits,
            "entropy": cfg.entropy,
            "qat": cfg.qat,
            "bpp_payload": self.bpp_payload(n, C, H, W),
            "bppc_payload": self.bpp_payload(n, C, H, W) / C,
            "psnr_unquantised": psnr_float,
            "psnr_quantised": psnr_quant,
        }
        return Encoded(data, n, self.bpp_payload(n, C, H, W), info, preview=decoded.render)
