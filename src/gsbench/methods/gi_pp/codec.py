"""The GaussianImage++ codec: attribute-separated LSQ+ quantisers, QAT, and its bitstream.

Encoding follows the public code's two programs (``codec.pipeline=two_stage``, the default):

1. the representation fit (``train.py``, ``train.iterations``; colours through a sigmoid with
   ``method.color_norm=auto``, as the README's codec commands pass ``--color_norm``), restored to its
   best snapshot; reused from ``codec.fit_cache`` when the same fit was already made (:mod:`.fit_cache`);
2. ``train_quantize.py`` from that fit: ``warmup - 1`` plain iterations (pruning, and growth while
   ``step < warmup``), then the best warm-up snapshot is reloaded, Adam and its StepLR are rebuilt at the
   current learning rate, and quantisation-aware training runs ``iterations - warmup`` more steps with
   LSQ+ quantisers (Adam, lr ``codec.quantizer_lr`` = 1e-3, StepLR 10k/0.5): positions 12 bits (pixels),
   covariance 10 bits on ``(log a, b, log c)`` of the stored ``Sigma + s I``, colour 6 bits. The best
   QAT snapshot, quantisers included, is what is encoded (``method.best_snapshot``).

``iterations`` is ``codec.iterations`` when set, else ``train.iterations``; ``warmup`` is
``codec.warmup`` when set, else 12% of it (the code's 6,000 of 50,000); ``codec.pipeline=single`` runs the
older one-run schedule (no separate fit; growth continues during QAT). ``method_info.stages`` records
what ran.

The file (docs/bitstream.md): container method ``gi_pp`` with sections ``POSN``, ``COVA``, ``COLR``, each
:func:`gsbench.codec.quant.write_lsq` (bits, channels, f32 steps and offsets, one symbol stream per
channel, entropy-coded with ``codec.entropy``). Gaussians whose dequantised covariance is not positive
definite (and, in the code variant, those under the radius clip) are left out of the file: they would
not be rendered.
"""

from __future__ import annotations

import torch
from torch import nn

from ...codec import DECODERS, BitstreamError
from ...codec.container import Container, encode_container
from ...codec.quant import LsqPlusQuantiser, lsq_preview, read_lsq, write_lsq
from ...codec.streams import ByteReader
from ..base import Encoded, FitContext
from ..decoded import DecodedGaussians
from ..loop import Every, optimise
from .config import GIPPCodecConfig
from .method import color_norm_for
from .model import clip_keep, positive_definite, render_gaussians
from .train import GrowthTrainer

MAX_LOG_VARIANCE = 60.0  # exp(60) px^2: far beyond any image, still finite in float32 products
LOG_FLOOR = 1e-6  # variances are clamped here before the log (QAT can push one through zero)


class GiPPQuantisers(nn.Module):
    """The three attribute quantisers; ``forward`` maps real attributes to their quantised values."""

    def __init__(self, pos_bits: int = 12, cov_bits: int = 10, color_bits: int = 6) -> None:
        super().__init__()
        self.pos = LsqPlusQuantiser(pos_bits, 2)
        self.cov = LsqPlusQuantiser(cov_bits, 3)
        self.color = LsqPlusQuantiser(color_bits, 3)

    def forward(self, means, cov, colors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fake-quantised ``means [N, 2]``, stored ``cov [N, 3]`` and ``colors [N, 3]`` (differentiable)."""
        return self.pos(means), from_log(self.cov(to_log(cov))), self.color(colors)


def to_log(cov: torch.Tensor) -> torch.Tensor:
    """``[N, 3]`` (a, b, c) -> (log a, b, log c)."""
    a, b, c = cov.unbind(-1)
    return torch.stack([a.clamp_min(LOG_FLOOR).log(), b, c.clamp_min(LOG_FLOOR).log()], dim=-1)


def from_log(v: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_log`."""
    la, b, lc = v.unbind(-1)
    return torch.stack([la.exp(), b, lc.exp()], dim=-1)


WARMUP_SHARE = 6000 / 50000  # the code's warm-up, as a share of its iterations


def codec_schedule(codec: GIPPCodecConfig, train_iterations: int) -> dict:
    """Iterations of the codec stage: ``{"iterations", "warmup", "source"}`` (see the module docstring)."""
    explicit = codec.iterations
    total = int(train_iterations if explicit is None else explicit)
    source = "train.iterations" if explicit is None else "codec.iterations"
    warmup = round(WARMUP_SHARE * total) if codec.warmup is None else codec.warmup
    return {"iterations": total, "warmup": max(1, min(warmup, total)), "source": source}


def compress_gipp(method, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
    """Fit (or reuse a fit), warm up, train under quantisation and encode ``image`` ``[3, H, W]``."""
    from .fit_cache import cached_fit

    codec = method.codec_config
    pipeline = codec.pipeline
    color_norm = color_norm_for(method.config, "compress")
    plan = codec_schedule(codec, int(method.train_cfg["iterations"]))
    total, warmup = plan["iterations"], plan["warmup"]
    info: dict = {"pipeline": pipeline, "color_norm": color_norm}
    if pipeline == "two_stage":
        model, info["fit"] = cached_fit(method, image, budget, ctx, color_norm)
        optimizer, scheduler = method.optimizer(model)
        trainer = GrowthTrainer(model, image, method.config, budget, total, optimizer, ctx)
        trainer.grow_until = trainer.prune_until = warmup  # train_quantize.py: only during the warm-up
    else:
        model, optimizer, scheduler, trainer = method.build_growth_fit(image, budget, ctx, total, color_norm)
    quant = GiPPQuantisers(
        codec.position_bits,
        codec.covariance_bits,
        codec.color_bits,
    ).to(ctx.device)
    counts = {"start": model.num_gaussians}
    history = optimise(
        trainer.step_forward, image, optimizer, scheduler, warmup - 1, ctx, loss="l2", hooks=[trainer]
    )
    snapshots = method.config.best_snapshot
    if snapshots:
        trainer.check_snapshot(warmup - 1)
    info["warmup_snapshot"] = trainer.restore_best()
    counts["qat_start"] = model.num_gaussians
    trainer.snapshot.reset()
    # the code rebuilds Adam and a fresh StepLR at the current learning rate when QAT starts
    optimizer, scheduler = method.optimizer(model, lr=scheduler.get_last_lr()[0])
    trainer.optimizer, trainer.extra_modules = optimizer, [quant]
    q_opt = torch.optim.Adam(quant.parameters(), lr=codec.quantizer_lr)
    q_sched = torch.optim.lr_scheduler.StepLR(q_opt, step_size=10000, gamma=0.5)

    def quantised_forward() -> torch.Tensor:
        means, cov, colors = quant(model.means, model.stored_cov(), model.color_values())
        out = render_gaussians(
            means, cov, colors, model.height, model.width, ctx.render, trainer.radius_clip, trainer.clip_rule
        )
        return out.clamp(0, 1)

    def step_quantisers(step: int) -> None:
        q_opt.step()  # the quantisers were in this step's graph
        q_sched.step()
        q_opt.zero_grad(set_to_none=True)

    trainer.forward = quantised_forward
    trainer.step_offset = warmup - 1  # growth, pruning and snapshots count from the warm-up's start
    qat = total - warmup
    qat_history = optimise(
        trainer.step_forward, image, optimizer, scheduler, qat, ctx, loss="l2",
        hooks=[Every(step_quantisers), trainer],
    )  # fmt: skip
    history += [{**h, "step": h["step"] + warmup - 1, "qat": True} for h in qat_history]
    if qat == 0:
        with torch.no_grad():
            quantised_forward()  # initialises the quantisers' ranges from the data
    if snapshots:
        trainer.check_snapshot(total - 1)  # the last step, when it is not a multiple of snapshot_every
    info.update(trainer.restore_best())
    counts["qat_end"] = model.num_gaussians
    info.update(
        variant=trainer.variant,
        stages={
            "fit": 0 if pipeline == "single" else int(info["fit"]["iterations"]),
            "fit_reused": pipeline == "two_stage" and bool(info["fit"]["fit"]["reused"]),
            "warmup": warmup - 1,
            "qat": qat,
            "iterations_source": plan["source"],
            "num_gaussians": counts,
        },
        growth=trainer.growth,
        history=history,
        bits={"position": quant.pos.bits, "covariance": quant.cov.bits, "color": quant.color.bits},
    )
    return encode_gipp(model, quant, ctx, codec.entropy, trainer, info)


@torch.no_grad()
def encode_gipp(model, quant: GiPPQuantisers, ctx: FitContext, entropy: bool, trainer, info: dict) -> Encoded:
    """Write the file; ``preview`` renders exactly what the decoder will rebuild."""
    means, cov, colors = model.means.detach(), model.stored_cov().detach(), model.color_values().detach()
    q_cov = from_log(lsq_preview(quant.cov, to_log(cov)))
    keep = positive_definite(q_cov)
    if trainer.radius_clip > 0:
        keep &= clip_keep(q_cov, trainer.radius_clip, trainer.clip_rule)
    means, cov, colors = means[keep], cov[keep], colors[keep]
    n, height, width = int(keep.sum()), model.height, model.width
    sections = {
        "POSN": write_lsq(quant.pos, means, entropy),
        "COVA": write_lsq(quant.cov, to_log(cov), entropy),
        "COLR": write_lsq(quant.color, colors, entropy),
    }
    data = encode_container(Container("gi_pp", height, width, n, sections))
    # per-row quantisation: the kept rows of q_cov are what the decoder rebuilds
    pm, pc, pk = lsq_preview(quant.pos, means), q_cov[keep], lsq_preview(quant.color, colors)
    info.update(entropy=entropy, dropped_at_encode=int((~keep).sum()))
    return Encoded(
        data=data,
        num_gaussians=n,
        bpp_payload=(72 * n + 512) / (height * width),  # the paper's analytic count (no header)
        info=info,
        preview=lambda: render_gaussians(pm, pc, pk, height, width, ctx.render),
    )


@DECODERS.register("gi_pp")
def decode_gipp(c: Container, device: torch.device, options) -> DecodedGaussians:
    """Rebuild the Gaussians of a ``gi_pp`` file (every value checked finite, render work bounded)."""
    out = []
    for tag, channels in (("POSN", 2), ("COVA", 3), ("COLR", 3)):
        reader = ByteReader(c.section(tag), f"gi_pp section {tag}")
        out.append(read_lsq(reader, c.num_gaussians, channels, device))
        reader.finish()
    means, logcov, colors = out
    if logcov.numel() and float(logcov[:, [0, 2]].max()) > MAX_LOG_VARIANCE:
        raise BitstreamError(f"corrupt gi_pp section COVA: a log-variance above {MAX_LOG_VARIANCE}")
    cov = from_log(logcov)
    return DecodedGaussians(
        means, cov, colors, c.height, c.width, options, c.limits, "gi_pp bitstream", c.nbytes
    )
