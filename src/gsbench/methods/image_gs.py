"""Image-GS (Zhang et al., SIGGRAPH 2025): content-adaptive 2D Gaussians with top-K normalised rendering.

Per Gaussian: position in [0, 1]^2, two scales (optimised as inverse scales), an angle and ``C`` colour
channels; no opacity (attribute format in :mod:`.image_gs_codec`). Positions start where the image
gradient is large (Eq. 6, ``lambda_init`` uniform), colours from the target there, scale 5 px, angle 0.
Loss ``L1 + 0.1 (1 - SSIM)``, Adam (position 5e-4, colour 5e-3, scale 2e-3, rotation 2e-3). Training
starts with half the budget and adds the rest in ``add_times`` equal steps every ``add_every`` iterations
at pixels drawn in proportion to the error (Eq. 7), recording PSNR at each step (the level-of-detail
curve). Every choice and its config key: ``docs/methods_image_gs.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_msssim import ssim as ssim_fn
from torch import nn
from tqdm.auto import tqdm

from ..gaussians import RenderOptions
from .base import METHODS, Encoded, FitContext, Fitted, Method, check_finite, psnr_from_mse
from .image_gs_codec import ImageGSDecoded, encode, fake_quantise, render_values
from .image_gs_config import ImageGSConfig
from .image_gs_schedule import PlateauDecay, plan_schedule


def sample_pixels(weight: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` distinct flat pixel indices drawn in proportion to ``weight [H W]`` (without replacement).

    Efraimidis-Spirakis keys ``log(u) / w`` (the ``n`` largest): any size, deterministic given ``gen``.
    Zero weights are drawn last; ``n`` above the pixel count repeats every pixel first.
    """
    w = weight.detach().double().cpu().reshape(-1).clamp_min(0)
    hw = w.numel()
    if not torch.isfinite(w).all() or w.sum() <= 0:
        w = torch.ones_like(w)
    reps, rest = divmod(n, hw)
    keys = torch.log(torch.rand(hw, generator=gen, dtype=torch.float64)) / w
    picked = torch.topk(keys, rest).indices if rest else torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(hw).repeat(reps), picked]).to(weight.device)


def gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    """Sobel magnitude ``[H, W]``: per channel, L2 over channels (as the public code)."""
    sob = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=image.dtype, device=image.device
    )
    kernels = torch.stack([sob, sob.t()])[:, None]  # d/dx, d/dy
    x = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")
    g = F.conv2d(x, kernels)  # [C, 2, H, W]
    return g.square().sum((0, 1)).sqrt()


def gaussian_blur(image: torch.Tensor) -> torch.Tensor:
    """The public code's blur of the target before the error map: kernel ~ sqrt(HW) / 400 (odd, >= 3)."""
    _, h, w = image.shape
    size = round(math.sqrt(h * w) // 400)
    if size < 1:
        return image
    size = max(3, size) | 1
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # torchvision's default for a kernel size
    x = torch.arange(size, dtype=image.dtype, device=image.device) - size // 2
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    out = F.pad(image[:, None], (size // 2,) * 4, mode="reflect")
    out = F.conv2d(F.conv2d(out, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return out[:, 0]


def pixel_xy(idx: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised centres ``[n, 2]`` of flat pixel indices: ``((j + 0.5) / W, (i + 0.5) / H)``."""
    i, j = idx // width, idx % width
    return torch.stack([(j + 0.5) / width, (i + 0.5) / height], dim=1).float()


class ImageGSModel(nn.Module):
    """Positions ``xy [N, 2]``, scales ``scale [N, 2]`` (inverse or not), ``rot [N, 1]``, ``feat [N, C]``."""

    def __init__(self, xy, feat, height: int, width: int, cfg: ImageGSConfig) -> None:
        super().__init__()
        self.height, self.width, self.cfg = height, width, cfg
        self.xy, self.feat = nn.Parameter(xy), nn.Parameter(feat)
        self.scale = nn.Parameter(self._new_scale(xy.shape[0], xy))
        self.rot = nn.Parameter(xy.new_zeros(xy.shape[0], 1))

    def _new_scale(self, n: int, like: torch.Tensor) -> torch.Tensor:
        s = self.cfg.init_scale
        return like.new_full((n, 2), 1.0 / s if self.cfg.inverse_scale else s)

    @property
    def num_gaussians(self) -> int:
        return self.xy.shape[0]

    def values(self, quantised: bool | None = None) -> torch.Tensor:
        """``[N, 5 + C]`` attributes (fake-quantised when training with ``qat``)."""
        v = torch.cat([self.xy, self.scale, self.rot, self.feat], dim=1)
        return fake_quantise(v, self.cfg.bits) if (self.cfg.qat if quantised is None else quantised) else v

    def render(self, options: RenderOptions, first: int | None = None) -> torch.Tensor:
        """Raw ``[C, H, W]`` render (of the first ``first`` Gaussians when given)."""
        return render_values(self.values()[:first], self.height, self.width, options, self.cfg.spec)

    @torch.no_grad()
    def clip_(self) -> None:
        """Keep attributes in their valid ranges (the paper clips): positions, angle mod pi, scale range."""
        self.xy.clamp_(0.0, 1.0)
        self.rot.remainder_(math.pi)
        lo, hi = self.cfg.scale_min, float(max(self.height, self.width))
        self.scale.clamp_(*((1.0 / hi, 1.0 / lo) if self.cfg.inverse_scale else (lo, hi)))

    @torch.no_grad()
    def append(self, xy: torch.Tensor, feat: torch.Tensor) -> None:
        n = xy.shape[0]
        self.xy = nn.Parameter(torch.cat([self.xy, xy]))
        self.scale = nn.Parameter(torch.cat([self.scale, self._new_scale(n, xy)]))
        self.rot = nn.Parameter(torch.cat([self.rot, xy.new_zeros(n, 1)]))
        self.feat = nn.Parameter(torch.cat([self.feat, feat]))

    def optimizer(self, previous: torch.optim.Adam | None = None) -> torch.optim.Adam:
        """Adam with the paper's learning rates; with ``reset_adam`` off, moments carry over (new ones 0)."""
        c = self.cfg
        groups = [
            (self.xy, c.lr_position),
            (self.scale, c.lr_scale),
            (self.rot, c.lr_rotation),
            (self.feat, c.lr_color),
        ]
        opt = torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in groups])
        if previous is not None and not c.reset_adam:
            for old_group, (p, _) in zip(previous.param_groups, groups, strict=True):
                st = previous.state.get(old_group["params"][0])
                if st:
                    n = p.shape[0]
                    opt.state[p] = {
                        "step": st["step"],
                        "exp_avg": _grow(st["exp_avg"], n),
                        "exp_avg_sq": _grow(st["exp_avg_sq"], n),
                    }
        return opt


def _grow(t: torch.Tensor, n: int) -> torch.Tensor:
    """``t`` padded with zero rows to ``n`` rows (Adam moments of appended Gaussians)."""
    return torch.cat([t, t.new_zeros(n - t.shape[0], *t.shape[1:])])


def initial_model(image: torch.Tensor, n: int, cfg: ImageGSConfig, gen: torch.Generator) -> ImageGSModel:
    """Eq. 6 positions (or uniform with ``init=random``), target colours (or U[0, 1)), scale 5 px, angle 0."""
    c, h, w = image.shape
    if cfg.init == "random":
        prob = torch.ones(h * w, dtype=torch.float64)
    else:
        g = gradient_magnitude(image).double().reshape(-1) ** cfg.grad_power
        g = g / g.sum() if g.sum() > 0 else torch.full_like(g, 1.0 / g.numel())
        prob = cfg.lambda_init / (h * w) + (1 - cfg.lambda_init) * g
    idx = sample_pixels(prob, n, gen).to(image.device)
    if cfg.color_init:
        feat = image.reshape(c, -1)[:, idx].t().float()
    else:
        feat = torch.rand(n, c, generator=gen).to(image.device)
    return ImageGSModel(pixel_xy(idx, h, w).to(image.device), feat.contiguous(), h, w, cfg)


def error_guided(image, current, n: int, cfg: ImageGSConfig, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and colours of ``n`` new Gaussians at pixels drawn with probability ~ |error| (Eq. 7)."""
    c, h, w = image.shape
    target = gaussian_blur(image) if cfg.add_blur else image
    diff = (target - current).reshape(c, -1)
    idx = sample_pixels(diff.abs().mean(0) ** cfg.add_error_power, n, gen)
    feat = (diff if cfg.add_color == "residual" else image.reshape(c, -1))[:, idx].t().float()
    return pixel_xy(idx, h, w).to(image.device), feat.contiguous()


def psnr_of(render: torch.Tensor, image: torch.Tensor) -> float:
    return psnr_from_mse(F.mse_loss(render.detach().clamp(0, 1), image).item())


class ImageGSFitted(Fitted):
    """A fitted Image-GS model, the renderer options it was fitted with, and its training facts."""

    def __init__(self, model: ImageGSModel, options: RenderOptions, facts: dict[str, Any]) -> None:
        self.model, self.options, self.facts = model, options, facts
        self.height, self.width = model.height, model.width

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        return self.model.render(self.options)

    @property
    def num_gaussians(self) -> int:
        return self.model.num_gaussians

    @property
    def num_params(self) -> int:
        return self.model.values(quantised=False).numel()

    def info(self) -> dict[str, Any]:
        return dict(self.facts)


@METHODS.register("image_gs")
class ImageGS(Method):
    """Image-GS; every key of :class:`ImageGSConfig` is a ``method.*`` option."""

    name = "image_gs"
    tasks = ("represent", "compress")

    def __init__(
        self,
        method_cfg: Mapping[str, Any],
        train_cfg: Mapping[str, Any],
        codec_cfg: Mapping[str, Any] | None = None,
    ) -> None:
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
            loss = loss + c.ssim_weight * (1 - ssim_fn(out[None], image[None], data_range=1.0, win_size=win))
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
        opt = model.optimizer()
        adds, lod, history = dict(sched.additions), [], []
        plateau = None
        if cfg.schedule == "code":
            plateau = PlateauDecay(
                cfg.eval_every, cfg.decay_patience, cfg.decay_ratio, cfg.max_decays, cfg.decay_threshold
            )
        last = iterations

        def lod_entry(step: int, psnr: float) -> dict[str, Any]:
            n = model.num_gaussians
            return {
                "step": step,
                "num_gaussians": n,
                "psnr": psnr,
                "bpp_payload": self.bpp_payload(n, C, H, W),
            }

        bar = tqdm(
            range(1, iterations + 1),
            desc=f"fit {ctx.label}".strip(),
            disable=not ctx.progress,
            leave=False,
            mininterval=1.0,
            dynamic_ncols=True,
        )
        for step in bar:
            out = model.render(ctx.render)
            loss = self.loss(out, image)
            check_finite(loss, step, ctx.label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            model.clip_()
            stop = False
            if plateau is not None and plateau.due(step, model.num_gaussians == sched.budget):
                stop = self.plateau_check(plateau, step, model, image, opt, ctx)
            if step in adds:
                with torch.no_grad():
                    current = model.render(ctx.render).clamp(0, 1)
                    lod.append(lod_entry(step, psnr_of(current, image)))
                    model.append(*error_guided(image, current, adds[step], cfg, gen))
                opt = model.optimizer(opt)
            if (ctx.log_every and step % ctx.log_every == 0) or step == iterations:
                psnr = psnr_of(out, image)
                history.append(
                    {"step": step, "loss": loss.item(), "psnr": psnr, "num_gaussians": model.num_gaussians}
                )
                bar.set_postfix(psnr=f"{psnr:.2f}", n=model.num_gaussians)
                ctx.log.info(
                    "%s iter %d/%d loss %.6f psnr %.2f dB (%d Gaussians)",
                    ctx.label,
                    step,
                    iterations,
                    loss.item(),
                    psnr,
                    model.num_gaussians,
                )
                if ctx.logger is not None:
                    ctx.logger(step, {"train/loss": loss.item(), "train/psnr": psnr})
            if stop:
                last = step
                break
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
