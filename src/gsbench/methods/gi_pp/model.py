"""GaussianImage++'s Gaussians: the model, its filter, the radius clip and row edits that carry the
optimiser's state (see :mod:`.gaussianimage_pp`)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...gaussians import RenderOptions, render

VARIANTS = ("paper", "code")
ALPHA = 9 * math.pi
FILTER_CAP = 300.0
COV_BOUND = (0.5, 0.0, 0.5)  # added to the uniform[0, 1) covariance of Gaussians added by growth (the code)
CLIP_RULES = ("official", "exact")
LOGIT_EPS = 1e-3  # target colours are clamped to [eps, 1 - eps] before the logit (sigmoid colours)


class GaussianImagePPModel(nn.Module):
    """``N`` Gaussians: ``means`` ``[N, 2]`` (pixels), raw ``cov`` ``[N, 3]``, raw ``colors`` ``[N, 3]``, and
    the per-Gaussian filter variance ``filter_var`` ``[N]`` (a buffer: it costs no bits).

    ``color_norm``: the rendered colour is ``sigmoid(colors)`` (the code's ``--color_norm``), else
    ``colors`` itself.
    """

    def __init__(self, n: int, height: int, width: int, seed: int = 0, color_norm: bool = False) -> None:
        super().__init__()
        self.height, self.width, self.color_norm = height, width, bool(color_norm)
        self.gen = torch.Generator().manual_seed(seed)
        size = torch.tensor([width, height], dtype=torch.float32)
        self.means = nn.Parameter(torch.rand(n, 2, generator=self.gen) * size)
        # the code: U[0, 1)^3 and, with its filter on, no (0.5, 0, 0.5) bound at initialisation
        self.cov = nn.Parameter(torch.rand(n, 3, generator=self.gen))
        self.colors = nn.Parameter(torch.zeros(n, 3))
        self.register_buffer("filter_var", torch.full((n,), filter_variance(height, width, n)))

    def new_cov(self, n: int) -> torch.Tensor:
        """``[n, 3]`` raw covariances of Gaussians added by growth: uniform[0, 1) plus (0.5, 0, 0.5)."""
        return torch.rand(n, 3, generator=self.gen) + torch.tensor(COV_BOUND)

    def color_values(self) -> torch.Tensor:
        """``[N, 3]`` the rendered (and quantised) colours."""
        return torch.sigmoid(self.colors) if self.color_norm else self.colors

    def raw_colors(self, rgb: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`color_values` for ``[n, 3]`` target colours (clamped for the logit)."""
        return torch.logit(rgb.clamp(LOGIT_EPS, 1 - LOGIT_EPS)) if self.color_norm else rgb

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    def stored_cov(self) -> torch.Tensor:
        """``[N, 3]`` the filtered covariance ``Sigma + s I`` (what is rendered and stored)."""
        s = self.filter_var
        return self.cov + torch.stack([s, torch.zeros_like(s), s], dim=-1)

    def render(
        self, options: RenderOptions | None, radius_clip: float = 0.0, clip_rule: str = "official"
    ) -> torch.Tensor:
        """``[3, H, W]`` raw render; ``radius_clip > 0`` drops Gaussians thinner than that (code variant)."""
        return render_gaussians(
            self.means,
            self.stored_cov(),
            self.color_values(),
            self.height,
            self.width,
            options,
            radius_clip,
            clip_rule,
        )


def render_gaussians(
    means, cov, colors, height, width, options, radius_clip: float = 0.0, clip_rule: str = "official"
) -> torch.Tensor:
    """Sum-render ``[3, H, W]``; without the Gaussians :func:`clip_keep` drops when ``radius_clip > 0``."""
    if radius_clip > 0:
        keep = clip_keep(cov, radius_clip, clip_rule)
        means, cov, colors = means[keep], cov[keep], colors[keep]
    return render(means, cov, colors, height, width, options)


def clip_keep(cov: torch.Tensor, radius_clip: float, rule: str = "official") -> torch.Tensor:
    """``[N]`` bool: the Gaussians of packed ``cov`` ``[N, 3]`` that the radius clip keeps.

    ``official``: the code's projection test, drop when ``ceil(3 sqrt(lambda_min)) < radius_clip`` with
    ``lambda_min = mid - sqrt(max(0.1, mid^2 - det))``; the ``ceil`` makes it fire only when
    ``lambda_min`` is exactly 0 (a negative ``lambda_min`` gives NaN, which the test keeps).
    ``exact``: drop when ``3 sqrt(lambda_min) < radius_clip`` with the exact eigenvalue.
    """
    if rule == "exact":
        return minor_radius(cov) >= radius_clip
    if rule != "official":
        raise ValueError(f"unknown radius clip rule {rule!r}; valid: {', '.join(CLIP_RULES)}")
    with torch.no_grad():
        a, b, c = cov.unbind(-1)
        mid = 0.5 * (a + c)
        lam_min = mid - torch.sqrt(torch.clamp(mid * mid - (a * c - b * b), min=0.1))
        radius = torch.ceil(3 * torch.sqrt(lam_min))  # NaN where lam_min < 0, as the CUDA float code
        return ~(radius < radius_clip)


def minor_radius(cov: torch.Tensor) -> torch.Tensor:
    """``[N]`` 3 sqrt(lambda_min) of packed covariances ``[N, 3]`` (NaN-free; 0 for invalid ones)."""
    with torch.no_grad():
        a, b, c = cov.unbind(-1)
        mid = 0.5 * (a + c)
        lam_min = mid - torch.sqrt(torch.clamp(mid * mid - (a * c - b * b), min=0.0))
        return 3 * torch.sqrt(torch.clamp(lam_min, min=0.0))


def filter_variance(height: int, width: int, n_total: int) -> float:
    """CAF: ``min(HW / (9 pi N_t), 300)`` for Gaussians created when the count becomes ``n_total``."""
    return min(height * width / (ALPHA * max(n_total, 1)), FILTER_CAP)


def positive_definite(cov: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: ``a > 0`` and ``a c - b^2 > 0`` for packed ``[N, 3]``."""
    a, b, c = cov.unbind(-1)
    return (a > 0) & (a * c - b * b > 0)


PARAMS = ("means", "cov", "colors")


def setattr_tensor(model: nn.Module, name: str, value: torch.Tensor) -> None:
    """Replace a parameter or buffer of ``model`` by ``value`` (any row count)."""
    if name in PARAMS:
        setattr(model, name, nn.Parameter(value.clone()))
    else:
        model.register_buffer(name, value.clone())


@torch.no_grad()
def edit_gaussians(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    keep: torch.Tensor | None = None,
    extra: dict | None = None,
) -> None:
    """Keep the rows ``keep`` and/or append ``extra`` rows to every per-Gaussian tensor, carrying the
    optimiser's moment estimates along (new rows start with zero moments, as in 3DGS densification)."""
    for name in (*PARAMS, "filter_var"):
        old = getattr(model, name)
        new = old.detach()[keep] if keep is not None else old.detach()
        if extra is not None:
            new = torch.cat([new, extra[name].to(new)])
        if name not in PARAMS:
            model.register_buffer(name, new)
            continue
        param = nn.Parameter(new)
        if optimizer is not None:
            _move_state(optimizer, old, param, keep, 0 if extra is None else len(extra[name]))
        setattr(model, name, param)


def _move_state(optimizer, old, param, keep, added: int) -> None:
    for group in optimizer.param_groups:
        group["params"] = [param if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, None)
    if not state:
        return
    for key, value in state.items():
        if torch.is_tensor(value) and value.shape == old.shape:
            value = value[keep] if keep is not None else value
            state[key] = torch.cat([value, value.new_zeros(added, *value.shape[1:])])
    optimizer.state[param] = state
