"""Image-GS's Gaussians: the model, its optimiser, and where Gaussians are placed (Eq. 6 and Eq. 7).

See :mod:`.method` for the fit and docs/methods_image_gs.md for every choice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...gaussians import RenderOptions
from .codec import fake_quantise, render_values
from .config import ImageGSConfig


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
