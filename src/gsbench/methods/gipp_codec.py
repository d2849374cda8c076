"""The GaussianImage++ codec: attribute-separated LSQ+ quantisers, QAT, and its bitstream.

Encoding (the paper's compression pipeline): ``codec.warmup`` (6,000) iterations of plain training
(D3, CAF and pruning as in :mod:`.gaussianimage_pp`), then quantisation-aware training to
``train.iterations`` with LSQ+ quantisers (Adam, lr ``codec.quantizer_lr`` = 1e-3, StepLR 10k/0.5 as in
the code): positions 12 bits (pixels), covariance 10 bits on ``(log a, b, log c)`` of the stored
``Sigma + s I`` (variances in the log domain), colour 6 bits. At the switch the model's Adam moments are
reset (the code rebuilds Adam there) and, with ``method.best_snapshot``, the best snapshot is reloaded.

The file (docs/bitstream.md): container method ``gi_pp`` with sections ``POSN``, ``COVA``, ``COLR``, each
:func:`gsbench.codec.quant.write_lsq` (bits, channels, f32 steps and offsets, one symbol stream per
channel, entropy-coded with ``codec.entropy``). Gaussians whose dequantised covariance is not positive
definite (and, in the code variant, those under the radius clip) are left out of the file: they would
not be rendered.
"""

from __future__ import annotations

import torch
from torch import nn

from ..codec import DECODERS, BitstreamError, DecodedGaussians
from ..codec.container import Container, encode_container
from ..codec.quant import LsqPlusQuantizer, lsq_preview, read_lsq, write_lsq
from ..codec.streams import ByteReader
from .base import Encoded, FitContext
from .gaussianimage_pp import minor_radius, positive_definite, render_gaussians
from .loop import optimise

MAX_LOG_VARIANCE = 60.0  # exp(60) px^2: far beyond any image, still finite in float32 products
LOG_FLOOR = 1e-6  # variances are clamped here before the log (QAT can push one through zero)


class GiPPQuantizers(nn.Module):
    """The three attribute quantisers; ``forward`` maps real attributes to their quantised values."""

    def __init__(self, pos_bits: int = 12, cov_bits: int = 10, color_bits: int = 6) -> None:
        super().__init__()
        self.pos = LsqPlusQuantizer(pos_bits, 2)
        self.cov = LsqPlusQuantizer(cov_bits, 3)
        self.color = LsqPlusQuantizer(color_bits, 3)

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


def compress_gipp(method, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
    """Fit with warm-up + QAT and encode ``image`` ``[3, H, W]``; see the module docstring."""
    codec = method.codec_cfg
    iterations = int(method.train_cfg["iterations"])
    warmup = min(int(codec.get("warmup", 6000)), iterations)
    model, optimizer, scheduler, trainer = method.setup(image, budget, ctx, iterations)
    quant = GiPPQuantizers(
        int(codec.get("position_bits", 12)),
        int(codec.get("covariance_bits", 10)),
        int(codec.get("color_bits", 6)),
    ).to(ctx.device)
    q_opt = torch.optim.Adam(quant.parameters(), lr=float(codec.get("quantizer_lr", 1e-3)))
    q_sched = torch.optim.lr_scheduler.StepLR(q_opt, step_size=10000, gamma=0.5)
    info: dict = {}

    def quantised_forward() -> torch.Tensor:
        means, cov, colors = quant(model.means, model.stored_cov(), model.colors)
        out = render_gaussians(means, cov, colors, model.height, model.width, ctx.render, trainer.radius_clip)
        return out.clamp(0, 1)

    def on_step(step: int) -> None:
        trainer.on_step(step)
        if step > warmup:  # the quantisers were in this step's graph
            q_opt.step()
            q_sched.step()
            q_opt.zero_grad(set_to_none=True)
        if step == warmup:
            info.update(trainer.restore_best())
            trainer.best = None
            optimizer.param_groups[0]["params"] = list(model.parameters())
            optimizer.state.clear()  # the code rebuilds Adam (at the current lr) when QAT starts
            trainer.forward = quantised_forward

    if warmup == 0:
        trainer.forward = quantised_forward
    history = optimise(
        lambda: trainer.forward(), image, optimizer, scheduler, iterations, ctx, loss="l2", on_step=on_step
    )
    info.update(trainer.restore_best() if trainer.best is not None else {})
    info.update(
        variant=trainer.variant,
        growth=trainer.growth,
        history=history,
        warmup=warmup,
        bits={"position": quant.pos.bits, "covariance": quant.cov.bits, "color": quant.color.bits},
    )
    return encode_gipp(model, quant, ctx, bool(codec.get("entropy", True)), trainer.radius_clip, info)


@torch.no_grad()
def encode_gipp(
    model, quant: GiPPQuantizers, ctx: FitContext, entropy: bool, radius_clip: float, info: dict
) -> Encoded:
    """Write the file; ``preview`` renders exactly what the decoder will rebuild."""
    means, cov, colors = model.means.detach(), model.stored_cov().detach(), model.colors.detach()
    q_cov = from_log(lsq_preview(quant.cov, to_log(cov)))
    keep = positive_definite(q_cov)
    if radius_clip > 0:
        keep &= minor_radius(q_cov) >= radius_clip
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
