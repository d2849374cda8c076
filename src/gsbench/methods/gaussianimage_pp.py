"""GaussianImage++ (AAAI 2026): direct covariances, distortion-driven densification (D3) and a
content-aware filter (CAF), rendered by accumulated summation.

Paper variant (default, ``method.variant=paper``): ``N0 = M/2`` Gaussians at uniform random positions
with zero colour; every ``grow_every`` (5,000) iterations, while below the last iteration, add
``k = floor((M - N_t) / 2)`` Gaussians at the top-k pixels of the L1 distortion (summed over channels),
coloured from the target there. Each new Gaussian gets the filter variance ``s = min(HW / (alpha N_t),
300)`` with ``alpha = 9 pi`` and ``N_t`` the count after the addition; the stored covariance is
``Sigma + s I``. Every ``prune_every`` (100) iterations Gaussians whose stored covariance is not positive
definite are removed.

Code variant (``method.variant=code``, Sweethyh/GaussianImage_plus): growth ``k = min(1000, M - N_t)``
and the whole rest at iteration ``T - grow_every``; new colours are zero; Gaussians whose minor-axis 3-sigma
radius is under ``radius_clip`` (1 px) are not rendered. docs/methods.md lists every choice.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..gaussians import RenderOptions, render
from .base import METHODS, FitContext, Fitted, Method, psnr_from_mse
from .loop import optimise

VARIANTS = ("paper", "code")
ALPHA = 9 * math.pi
FILTER_CAP = 300.0
COV_BOUND = (0.5, 0.0, 0.5)  # added to the uniform[0, 1) covariance initialisation, as in the code


class GaussianImagePPModel(nn.Module):
    """``N`` Gaussians: ``means`` ``[N, 2]`` (pixels), raw ``cov`` ``[N, 3]``, ``colors`` ``[N, 3]``, and the
    per-Gaussian filter variance ``filter_var`` ``[N]`` (a buffer: it costs no bits)."""

    def __init__(self, n: int, height: int, width: int, seed: int = 0) -> None:
        super().__init__()
        self.height, self.width = height, width
        self.gen = torch.Generator().manual_seed(seed)
        size = torch.tensor([width, height], dtype=torch.float32)
        self.means = nn.Parameter(torch.rand(n, 2, generator=self.gen) * size)
        self.cov = nn.Parameter(self.new_cov(n))
        self.colors = nn.Parameter(torch.zeros(n, 3))
        self.register_buffer("filter_var", torch.full((n,), filter_variance(height, width, n)))

    def new_cov(self, n: int) -> torch.Tensor:
        """``[n, 3]`` fresh raw covariances: uniform[0, 1) plus (0.5, 0, 0.5)."""
        return torch.rand(n, 3, generator=self.gen) + torch.tensor(COV_BOUND)

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    def stored_cov(self) -> torch.Tensor:
        """``[N, 3]`` the filtered covariance ``Sigma + s I`` (what is rendered and stored)."""
        s = self.filter_var
        return self.cov + torch.stack([s, torch.zeros_like(s), s], dim=-1)

    def render(self, options: RenderOptions | None, radius_clip: float = 0.0) -> torch.Tensor:
        """``[3, H, W]`` raw render; ``radius_clip > 0`` drops Gaussians thinner than that (code variant)."""
        return render_gaussians(
            self.means, self.stored_cov(), self.colors, self.height, self.width, options, radius_clip
        )


def render_gaussians(means, cov, colors, height, width, options, radius_clip: float = 0.0) -> torch.Tensor:
    """Sum-render; without the Gaussians whose minor-axis 3-sigma radius is under ``radius_clip`` if > 0."""
    if radius_clip > 0:
        keep = minor_radius(cov) >= radius_clip
        means, cov, colors = means[keep], cov[keep], colors[keep]
    return render(means, cov, colors, height, width, options)


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


def growth_count(variant: str, budget: int, n: int, step: int, iterations: int, grow_every: int) -> int:
    """How many Gaussians D3 adds at ``step`` (0 when it is not a growth step)."""
    if grow_every <= 0 or step % grow_every or step >= iterations or n >= budget:
        return 0
    if variant == "paper":
        return (budget - n) // 2
    if step >= iterations - grow_every:  # the code's last growth step fills the budget
        return budget - n
    return min(1000, budget - n)


def growth_schedule(variant: str, budget: int, iterations: int, grow_every: int) -> list[tuple[int, int]]:
    """``[(step, count after growth)]`` assuming no pruning: the densification plan of a fit."""
    n, out = budget // 2, []
    for step in range(grow_every, iterations, grow_every) if grow_every > 0 else []:
        k = growth_count(variant, budget, n, step, iterations, grow_every)
        if k:
            n += k
            out.append((step, n))
    return out


class Trainer:
    """The D3 / pruning / snapshot state of one fit; :meth:`on_step` is the training loop's hook."""

    def __init__(
        self,
        model: GaussianImagePPModel,
        target: torch.Tensor,
        cfg: dict,
        budget: int,
        iterations: int,
        optimizer: torch.optim.Optimizer,
        ctx: FitContext,
    ) -> None:
        self.model, self.target, self.cfg, self.budget = model, target, cfg, budget
        self.iterations, self.optimizer, self.ctx = iterations, optimizer, ctx
        self.variant = str(cfg.get("variant", "paper"))
        self.radius_clip = float(cfg.get("radius_clip", 1.0)) if self.variant == "code" else 0.0
        self.growth: list[dict[str, int]] = []
        self.best: tuple[float, int, dict] | None = None
        self.forward = self.render  # replaced by the quantised forward during QAT

    def render(self) -> torch.Tensor:
        return self.model.render(self.ctx.render, self.radius_clip).clamp(0, 1)

    def on_step(self, step: int) -> None:
        cfg = self.cfg
        k = growth_count(
            self.variant,
            self.budget,
            self.model.num_gaussians,
            step,
            self.iterations,
            int(cfg.get("grow_every", 5000)),
        )
        if k:
            self.grow(k)
            self.growth.append({"step": step, "added": k, "num_gaussians": self.model.num_gaussians})
        if int(cfg.get("prune_every", 100)) and step % int(cfg.get("prune_every", 100)) == 0:
            keep = positive_definite(self.model.stored_cov().detach())
            if not bool(keep.all()):
                edit_gaussians(self.model, self.optimizer, keep=keep)
        every = int(cfg.get("snapshot_every", 100))
        if cfg.get("best_snapshot", False) and (step % every == 0 or step == self.iterations):
            with torch.no_grad():
                psnr = psnr_from_mse(F.mse_loss(self.forward(), self.target).item())
            if self.best is None or psnr > self.best[0]:
                self.best = (psnr, step, copy.deepcopy(self.model.state_dict()))

    @torch.no_grad()
    def grow(self, k: int) -> None:
        """Add ``k`` Gaussians at the top-k pixels of the L1 distortion."""
        model, (_, height, width) = self.model, self.target.shape
        distortion = (self.forward() - self.target).abs().sum(0).reshape(-1)
        idx = torch.topk(distortion, min(k, distortion.numel())).indices
        ys, xs = idx // width, idx % width
        means = torch.stack([xs, ys], dim=1).to(model.means.dtype)  # pixel centres sit at integers
        colors = self.target[:, ys, xs].T if self.variant == "paper" else torch.zeros(len(idx), 3)
        n_after = model.num_gaussians + len(idx)
        extra = {
            "means": means,
            "cov": model.new_cov(len(idx)).to(model.cov.device),
            "colors": colors.to(model.colors),
            "filter_var": torch.full((len(idx),), filter_variance(height, width, n_after)),
        }
        edit_gaussians(model, self.optimizer, extra=extra)

    def restore_best(self) -> dict:
        """Load the best snapshot (if kept); say which state the result is."""
        if self.best is None:
            return {"snapshot": "final"}
        psnr, step, state = self.best
        for name in ("means", "cov", "colors", "filter_var"):
            setattr_tensor(self.model, name, state[name])
        return {"snapshot": "best", "snapshot_step": step, "snapshot_psnr": psnr}


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


class GaussianImagePPFitted(Fitted):
    """A fitted GaussianImage++ model."""

    def __init__(self, model: GaussianImagePPModel, options: RenderOptions, radius_clip: float, info: dict):
        self.model, self.options, self.radius_clip, self._info = model, options, radius_clip, info
        self.height, self.width = model.height, model.width

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        return self.model.render(self.options, self.radius_clip)

    @property
    def num_gaussians(self) -> int:
        return self.model.num_gaussians

    @property
    def num_params(self) -> int:
        return 7 * self.model.num_gaussians  # position 2 + covariance 3 + colour 3 (filter is folded in)

    def info(self) -> dict:
        return self._info


@METHODS.register("gi_pp")
class GaussianImagePP(Method):
    """GaussianImage++; keys: ``variant`` (paper | code), ``lr``, ``lr_step``, ``lr_gamma``, ``grow_every``,
    ``prune_every``, ``radius_clip`` (code variant), ``best_snapshot``, ``snapshot_every``."""

    name = "gi_pp"
    tasks = ("represent", "compress")

    def setup(self, image: torch.Tensor, budget: int, ctx: FitContext, iterations: int):
        """Model, Adam + StepLR and the :class:`Trainer` of a fit of ``iterations`` steps."""
        variant = str(self.cfg.get("variant", "paper"))
        if variant not in VARIANTS:
            raise ValueError(f"unknown GaussianImage++ variant {variant!r}; valid: {', '.join(VARIANTS)}")
        _, height, width = image.shape
        model = GaussianImagePPModel(max(budget // 2, 1), height, width, ctx.seed).to(ctx.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(self.cfg.get("lr", 0.018)), eps=1e-15)
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer,
            step_size=int(self.cfg.get("lr_step", 20000)),
            gamma=float(self.cfg.get("lr_gamma", 0.5)),
        )
        trainer = Trainer(model, image, self.cfg, budget, iterations, optimizer, ctx)
        return model, optimizer, scheduler, trainer

    def fit(self, image: torch.Tensor, budget: int, ctx: FitContext) -> GaussianImagePPFitted:
        iterations = int(self.train_cfg["iterations"])
        model, optimizer, scheduler, trainer = self.setup(image, budget, ctx, iterations)
        history = optimise(
            lambda: trainer.forward(),
            image,
            optimizer,
            scheduler,
            iterations,
            ctx,
            loss="l2",
            on_step=trainer.on_step,
        )
        info = {"variant": trainer.variant, "growth": trainer.growth, "history": history}
        info.update(trainer.restore_best())
        return GaussianImagePPFitted(model, ctx.render, trainer.radius_clip, info)

    def compress(self, image: torch.Tensor, budget: int, ctx: FitContext):
        """Warm-up, QAT and the bitstream: :func:`gsbench.methods.gipp_codec.compress_gipp`."""
        from .gipp_codec import compress_gipp

        return compress_gipp(self, image, budget, ctx)
