"""The SGI encoder: quantise a fitted model with its context model and write the file (:mod:`.codec`)."""

from __future__ import annotations

import struct

import numpy as np
import torch

from ...codec.container import Container, encode_container
from ...codec.streams import encode_symbols
from ..base import Encoded, FitContext
from .codec import (
    CHUNK,
    MAX_RANGE,
    SYMBOL_LIMIT,
    TAGS,
    Header,
    SGIParts,
    attribute_bits,
    coding_models,
    quantised_gaussian,
)
from .context import GROUPS
from .hashgrid import binary_bits
from .model import SGIModel
from .positions import encode_positions, morton_order

MB = float(1 << 20)  # the paper's MB (the code's bit2MB_scale = 8 * 1024 * 1024 bits)


def model_mlps(model: SGIModel) -> list[torch.Tensor]:
    """The 12 MLP tensors (colour, covariance, context; ``W1, b1, W2, b2`` each) rounded to float16."""
    out = []
    for mlp in (model.mlp_color, model.mlp_cov, model.context.mlp):
        for layer in (mlp[0], mlp[2]):
            out += [layer.weight.detach().cpu().half(), layer.bias.detach().cpu().half()]
    return out


@torch.no_grad()
def quantise(model: SGIModel, q: dict[str, float]) -> SGIParts:
    """The file's content for ``model`` at full resolution: seeds in Morton order, the grid's signs, the
    float16 MLPs, and per group symbols ``round(x / Q)`` (clamped to +-2^19) and their dequantised values."""
    if model.level != 0:
        raise ValueError("encode a model at full resolution (level 0)")
    s = model.num_seeds
    head = Header(model.k, model.feature_dim, model.feature_dim, model.context.hidden, model.unit, q, s,
                  model.context.grid.config)  # fmt: skip
    seeds = model.seeds.cpu().numpy()
    order = morton_order(seeds)
    idx = torch.from_numpy(order).to(model.feature.device)
    raw = {
        "feature": model.feature[idx],
        "scaling": model.scaling()[idx],
        "offset": model.offset[idx].reshape(s, -1),
    }
    raw = {g: v.detach().cpu().double() for g, v in raw.items()}
    signs = (model.context.grid.params.detach().cpu() >= 0).reshape(-1).numpy().astype(np.int64)
    parts = SGIParts(head, seeds[order], signs, model_mlps(model), {}, {})
    table, ctx_mlp, xy01 = parts.context_inputs(model.height, model.width)
    syms: dict[str, list] = {g: [] for g in GROUPS}
    vals: dict[str, list] = {g: [] for g in GROUPS}
    for start in range(0, s, CHUNK):
        models = coding_models(head, table, ctx_mlp, xy01[start : start + CHUNK])
        for group, (_, _, step) in models.items():
            sym = torch.round(raw[group][start : start + CHUNK] / step).clamp(-SYMBOL_LIMIT, SYMBOL_LIMIT)
            syms[group].append(sym.to(torch.int32))
            vals[group].append((syms[group][-1] * step).float())
    parts.symbols = {g: torch.cat(syms[g]) for g in GROUPS}
    parts.values = {g: torch.cat(vals[g]) for g in GROUPS}
    return parts


@torch.no_grad()
def entropy_code(parts: SGIParts, height: int, width: int) -> tuple[dict[str, bytes], dict[str, float]]:
    """Per group the section bytes and the estimated bits of its symbols (the paper's rate formula)."""
    import constriction

    head, syms = parts.head, parts.symbols
    table, ctx_mlp, xy01 = parts.context_inputs(height, width)
    estimate, families, coders, ranges = {}, {}, {}, {}
    for group in GROUPS:
        lo, hi = int(syms[group].min()), int(syms[group].max())
        hi = max(hi, lo + 1)  # constriction's QuantizedGaussian needs at least two symbols
        if hi - lo >= MAX_RANGE:
            raise ValueError(f"sgi: {group} symbols span {hi - lo + 1} values (limit {MAX_RANGE})")
        ranges[group], families[group] = (lo, hi), quantised_gaussian(lo, hi)
        coders[group], estimate[group] = constriction.stream.stack.AnsCoder(), 0.0
    for start in reversed(range(0, head.seeds, CHUNK)):  # a stack: last chunk in first, read forward
        models = coding_models(head, table, ctx_mlp, xy01[start : start + CHUNK])
        for group, (mean, std, _) in models.items():
            sym = syms[group][start : start + CHUNK]
            estimate[group] += attribute_bits(sym, mean, std)
            coders[group].encode_reverse(
                sym.reshape(-1).numpy().astype(np.int32),
                families[group],
                mean.reshape(-1).numpy(),
                std.reshape(-1).numpy(),
            )
    sections = {}
    for group in GROUPS:
        words = coders[group].get_compressed().astype("<u4")
        sections[TAGS[group]] = struct.pack("<iiI", *ranges[group], len(words)) + words.tobytes()
    return sections, estimate


def encode_parts(
    parts: SGIParts, height: int, width: int
) -> tuple[bytes, dict[str, bytes], dict[str, float]]:
    """The file for ``parts``: ``(bytes, sections, estimated bits per group)`` (deterministic)."""
    attr_sections, estimate = entropy_code(parts, height, width)
    sections = {
        "HEAD": parts.head.pack(),
        "SEED": encode_positions(parts.seeds),
        "HASH": encode_symbols(parts.signs, 1, entropy=True),
        "MLPS": b"".join(t.numpy().astype("<f2").tobytes() for t in parts.mlps16),
        **attr_sections,
    }
    n = parts.head.seeds * parts.head.k
    return encode_container(Container("sgi", height, width, n, sections)), sections, estimate


@torch.no_grad()
def encode_sgi(model: SGIModel, q: dict[str, float], ctx: FitContext, info: dict) -> Encoded:
    """Write ``model`` (at full resolution) to an ``sgi`` file; ``preview`` renders what the decoder builds.

    ``bpp_payload`` counts what the file stores, as the paper counts it: the context model's estimate of
    the attribute bits, the grid's Eq. 13 bits, the MLPs at the 16 bits per value the file holds them in,
    192 bits of bounds, and (G-PCC being unavailable) the bytes of our position section. The official
    code counts the MLPs at 32 bits, which can put its count above the real file's size: that figure is
    kept as ``method_info["bpp_code_count"]``.
    """
    height, width = model.height, model.width
    parts = quantise(model, q)
    data, sections, estimate = encode_parts(parts, height, width)
    mlp_values = sum(t.numel() for t in parts.mlps16)
    grid_bits = binary_bits(int(parts.signs.sum()), parts.signs.size)
    payload_bits = sum(estimate.values()) + grid_bits + 16 * mlp_values + 192 + 8 * len(sections["SEED"])
    sizes = {tag: len(body) for tag, body in sections.items()}
    info.update(
        num_seeds=model.num_seeds,
        gaussians_per_seed=model.k,
        section_bytes=sizes,
        estimated_bits={**estimate, "grid": grid_bits},
        coded_bits={g: 8 * sizes[TAGS[g]] for g in GROUPS},
        size_mb={
            "file": len(data) / MB,
            "code_count": (sum(sizes.values()) - sizes["MLPS"] + 4 * mlp_values + 24) / MB,
            "payload_estimate": payload_bits / 8 / MB,
        },
        mlp_values=mlp_values,
        bpp_code_count=(payload_bits + 16 * mlp_values) / (height * width),
        position_coding="morton-delta (G-PCC substitute)",
    )
    gaussians = parts.gaussians(height, width, ctx.device)

    def preview() -> torch.Tensor:
        from ...gaussians import render

        return render(*gaussians, height, width, ctx.render)

    return Encoded(
        data=data,
        num_gaussians=model.num_gaussians,
        bpp_payload=payload_bits / (height * width),
        info=info,
        preview=preview,
    )
