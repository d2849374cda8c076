"""The GaussianImage codec (ECCV 2024): fp16 positions, a 6-bit learned Cholesky quantiser and
2-stage residual VQ of the colours, trained by quantisation-aware fine-tuning; and its bitstream.

As in the public code (``train_quantize.py``, see ../shared/research): the representation is fitted first
(``train.iterations``), then fine-tuned for ``codec.qat_iterations`` (null: ``train.iterations``, as the
code's 50,000 + 50,000) with every attribute quantised in the forward pass: positions (the pre-tanh
parameters) cast through fp16 with a straight-through gradient, Cholesky factors through a per-channel
learned uniform quantiser (``codec.cholesky_bits`` = 6), colours through ``ResidualVQ`` (2 stages x 8
codewords, EMA 0.8, k-means init); loss = L2 + commitment. Adan (lr ``codec.lr`` = 1e-3) trains the model
and the quantiser, StepLR 20k/0.5. The published numbers evaluate the best QAT snapshot
(``test_quantize.py`` loads ``gaussian_model.best.pth.tar``): ``codec.best_snapshot`` (default true) keeps
it, the quantisers' step, offset and codebooks included, checked every ``codec.snapshot_every`` steps.

The file: container method ``gi`` with sections ``POSN`` (2N float16), ``CHOL``
(:func:`gsbench.codec.quant.write_lsq`) and ``COLR`` (stages u8, size u8, dim u8, f32 codebooks, one
symbol stream of ceil(log2 size)-bit indices per stage).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_optimizer import Adan

from ...codec import DECODERS
from ...codec.container import Container, encode_container
from ...codec.quant import LsqPlusQuantiser, fp16_ste, lsq_preview, raise_corrupt, read_lsq, write_lsq
from ...codec.rvq import ResidualVQ
from ...codec.streams import ByteReader, decode_symbols, encode_symbols
from ...gaussians import cholesky_to_cov
from ...gaussians.params import cholesky_to_cov_legacy
from ...gaussians.strategy import BestSnapshot
from ..base import Encoded, FitContext, psnr_from_mse
from ..decoded import DecodedGaussians
from ..loop import TrainState, train

BOUND = (0.5, 0.0, 0.5)  # GaussianImage's fixed Cholesky bound


def gi_tensors(
    xyz: torch.Tensor, chol: torch.Tensor, height: int, width: int, legacy_grad: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means ``[N, 2]`` (pixels) and packed covariances ``[N, 3]`` from the pre-tanh positions and the
    Cholesky parameters (before the bound): the one formula that encoder preview and decoder share.
    ``legacy_grad``: the official backward of the covariance (``render.legacy_cholesky_grad``)."""
    size = torch.tensor([width, height], dtype=torch.float32, device=xyz.device)
    means = 0.5 * size * (torch.tanh(xyz.float()) + 1)
    to_cov = cholesky_to_cov_legacy if legacy_grad else cholesky_to_cov
    return means, to_cov(chol.float() + torch.tensor(BOUND, device=chol.device))


def qat_iterations(explicit: int | None, train_iterations: int) -> tuple[int, str]:
    """``(iterations, source)``: ``explicit`` (``codec.qat_iterations``) if set, else ``train.iterations``."""
    if explicit is None:
        return int(train_iterations), "train.iterations"
    return int(explicit), "codec.qat_iterations"


def module_snapshot(modules: list[torch.nn.Module], score, every: int = 100, last: int = 0) -> BestSnapshot:
    """The best-PSNR QAT state of ``modules`` (model, Cholesky quantiser, colour codebooks) as a hook;
    ``score`` renders and scores the quantised model; checked every ``every`` steps and at ``last``."""

    def load(states: list[dict]) -> None:
        for module, state in zip(modules, states, strict=True):
            module.load_state_dict(state)

    return BestSnapshot(score, lambda: [copy.deepcopy(m.state_dict()) for m in modules], load, every, last)


def compress_gi(method, image: torch.Tensor, budget: int, ctx: FitContext) -> Encoded:
    """Fit GaussianImage, fine-tune it under quantisation, keep the best QAT snapshot, encode it."""
    from ...gaussians import render

    codec = method.codec_config
    fitted = method.fit(image, budget, ctx)
    model = fitted.model
    if model.variant != "cholesky":
        raise ValueError("the GaussianImage codec quantises Cholesky factors: use method.variant=cholesky")
    q_chol = LsqPlusQuantiser(codec.cholesky_bits, 3).to(ctx.device)
    rvq = ResidualVQ(3, codec.rvq_stages, codec.rvq_codebook, codec.rvq_decay, seed=ctx.seed).to(ctx.device)
    commit_weight = codec.commitment
    params = [*model.parameters(), *q_chol.parameters()]
    optimizer = Adan(params, lr=codec.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=20000, gamma=0.5)
    box: dict[str, torch.Tensor] = {}
    legacy = ctx.render.legacy_cholesky_grad

    def forward() -> torch.Tensor:
        xyz, chol = fp16_ste(model.xyz), q_chol(model.cholesky)
        means, cov = gi_tensors(xyz, chol, model.height, model.width, legacy)
        colors, _, box["commit"] = rvq(model.colors)
        return render(means, cov, colors, model.height, model.width, ctx.render).clamp(0, 1)

    qat, source = qat_iterations(codec.qat_iterations, int(method.train_cfg["iterations"]))

    @torch.no_grad()
    def score() -> float:
        rvq.eval()  # no codebook update from the evaluation
        psnr = psnr_from_mse(torch.nn.functional.mse_loss(forward(), image).item())
        rvq.train()
        return psnr

    snapshot = module_snapshot([model, q_chol, rvq], score, codec.snapshot_every, qat)
    hooks = [snapshot] if codec.best_snapshot else []
    state = TrainState(
        forward, lambda out, target: F.mse_loss(out, target) + commit_weight * box["commit"], image,
        optimizer, scheduler,
    )  # fmt: skip
    history = train(state, qat, ctx, hooks, desc="qat") if qat > 0 else []
    info = {
        "variant": "cholesky",
        "fit_history": fitted.history,
        "fit_iterations": int(method.train_cfg["iterations"]),
        "qat_iterations": qat,
        "qat_iterations_source": source,
        "legacy_cholesky_grad": legacy,
        "history": history,
    }
    info.update(snapshot.restore())
    rvq.eval()
    return encode_gi(model, q_chol, rvq, ctx, codec.entropy, info)


@torch.no_grad()
def encode_gi(
    model, q_chol: LsqPlusQuantiser, rvq: ResidualVQ, ctx: FitContext, entropy: bool, info: dict
) -> Encoded:
    """Write the file; ``preview`` renders what the decoder will rebuild."""
    from ...gaussians import render

    xyz16 = model.xyz.detach().half()
    if not torch.isfinite(xyz16).all():
        raise ValueError("a position overflows float16; the fit diverged")
    chol = model.cholesky.detach()
    _, indices, _ = rvq(model.colors.detach())
    n, height, width = model.num_gaussians, model.height, model.width
    index_bits = max(1, math.ceil(math.log2(rvq.size)))
    colr = (
        bytes([rvq.stages, rvq.size, rvq.dim]) + rvq.codebooks.float().cpu().numpy().astype("<f4").tobytes()
    )
    colr += b"".join(
        encode_symbols(indices[:, s].cpu().numpy(), index_bits, entropy) for s in range(rvq.stages)
    )
    sections = {
        "POSN": xyz16.cpu().numpy().astype("<f2").tobytes(),
        "CHOL": write_lsq(q_chol, chol, entropy),
        "COLR": colr,
    }
    data = encode_container(Container("gi", height, width, n, sections))
    means, cov = gi_tensors(xyz16, lsq_preview(q_chol, chol), height, width)
    colors = rvq.decode(indices)
    info.update(entropy=entropy, cholesky_bits=q_chol.bits, rvq={"stages": rvq.stages, "size": rvq.size})
    return Encoded(
        data=data,
        num_gaussians=n,
        bpp_payload=(56 * n + 1728) / (height * width),  # the paper's analytic count (no header)
        info=info,
        preview=lambda: render(means, cov, colors, height, width, ctx.render),
    )


@DECODERS.register("gi")
def decode_gi(c: Container, device: torch.device, options) -> DecodedGaussians:
    """Rebuild the Gaussians of a ``gi`` file (every value checked finite, render work bounded)."""
    n = c.num_gaussians
    pos = ByteReader(c.section("POSN"), "gi section POSN")
    xyz = torch.from_numpy(pos.array("<f2", 2 * n).reshape(n, 2)).to(device)
    pos.finish()
    if not torch.isfinite(xyz).all():
        raise_corrupt(pos, "non-finite position")
    chol_reader = ByteReader(c.section("CHOL"), "gi section CHOL")
    chol = read_lsq(chol_reader, n, 3, device)
    chol_reader.finish()
    r = ByteReader(c.section("COLR"), "gi section COLR")
    stages, size, dim = r.unpack("BBB")
    if dim != 3 or not 1 <= stages <= 8 or size < 1:
        raise_corrupt(r, f"codebooks of {stages} x {size} x {dim}")
    books_np = r.array("<f4", stages * size * 3).reshape(stages, size, 3)
    if not np.isfinite(books_np).all():
        raise_corrupt(r, "non-finite colour codebook")
    books = torch.from_numpy(books_np).to(device)
    bits = max(1, math.ceil(math.log2(size)))
    idx = (
        np.stack([decode_symbols(r, bits, n) for _ in range(stages)], axis=1) if n else np.zeros((0, stages))
    )
    r.finish()
    if idx.size and idx.max() >= size:
        raise_corrupt(r, "a colour index beyond the codebook")
    idx_t = torch.from_numpy(idx.astype(np.int64)).to(device)
    colors = torch.zeros(n, 3, device=device)
    for s in range(stages):
        colors = colors + books[s][idx_t[:, s]]
    means, cov = gi_tensors(xyz, chol, c.height, c.width)
    return DecodedGaussians(
        means, cov, colors, c.height, c.width, options, c.limits, "gi bitstream", c.nbytes
    )
