"""COIN's bitstream: the SIREN's weights as float16 in a gsbench container, and its decoder.

Bitstream (a gsbench container, method ``coin``, N = 0): section ``ARCH`` = ``hidden u16, layers u16,
in u8 (2), out u8 (3), w0 f32, w0_initial f32`` and section ``WGTS`` = every layer's weight (row-major,
``[out, in]``) then bias, as float16 little-endian. The decoder evaluates the net in float32 from the
float16 weights (COIN evaluated in float16 on a GPU).
"""

from __future__ import annotations

import math
import struct

import numpy as np
import torch

from ...codec import DECODERS, BitstreamError, Container, check_output, encode_container
from ...codec.guard import check_memory, flush_denormals
from ...codec.streams import ByteReader
from ...gaussians.render import RenderOptions
from ..base import Decoded
from .model import IN_DIM, OUT_DIM, RENDER_CHUNK, Siren, num_params

MAX_HIDDEN, MAX_LAYERS = 1024, 64  # what a decoder accepts
ARCH_FORMAT = "<HHBBff"
W0_RANGE = (1e-3, 1e4)  # SIREN frequencies a decoder accepts


class DecodedCoin(Decoded):
    """A SIREN rebuilt from a file."""

    num_gaussians = 0

    def __init__(self, model: Siren, height: int, width: int) -> None:
        self.model, self.height, self.width = model, height, width

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        return check_output("coin bitstream", self.model.render(self.height, self.width))

    @property
    def num_params(self) -> int:
        return self.model.num_params


def pack(model: Siren, height: int, width: int) -> bytes:
    """The container for ``model`` with its weights rounded to float16."""
    arch = struct.pack(ARCH_FORMAT, model.hidden, model.layers, IN_DIM, OUT_DIM, model.w0, model.w0_initial)
    flat = torch.cat(
        [p.detach().reshape(-1).float().cpu() for lin in model.linears for p in (lin.weight, lin.bias)]
    )
    half = flat.numpy().astype("<f2")
    if not np.isfinite(half).all():
        raise ValueError("COIN weights overflow float16 (|w| > 65504); the fit diverged")
    container = Container("coin", height, width, 0, {"ARCH": arch, "WGTS": half.tobytes()})
    return encode_container(container)


@DECODERS.register("coin")
def decode_coin(
    container: Container, device: torch.device, options: RenderOptions | None = None
) -> DecodedCoin:
    """Rebuild the SIREN from the ``ARCH`` and ``WGTS`` sections; sizes are checked before allocating."""
    if container.num_gaussians != 0:
        n = container.num_gaussians
        raise BitstreamError(f"corrupt coin bitstream: the header says {n} Gaussians, not 0")
    reader = ByteReader(container.section("ARCH"), "coin ARCH section")
    hidden, layers, in_dim, out_dim, w0, w0_initial = reader.unpack(ARCH_FORMAT[1:])
    reader.finish()
    if (in_dim, out_dim) != (IN_DIM, OUT_DIM):
        raise BitstreamError(f"corrupt coin bitstream: a {in_dim}->{out_dim} net (expected 2 -> 3)")
    if not (1 <= hidden <= MAX_HIDDEN and 1 <= layers <= MAX_LAYERS):
        raise BitstreamError(
            f"corrupt coin bitstream: {layers} layers of width {hidden} "
            f"(accepted: 1..{MAX_LAYERS} layers, width 1..{MAX_HIDDEN})"
        )
    # w0 near 1e-38 makes every product subnormal (a 30 s decode); real nets use 1..100
    if not (
        math.isfinite(w0)
        and math.isfinite(w0_initial)
        and W0_RANGE[0] <= min(w0, w0_initial)
        and max(w0, w0_initial) <= W0_RANGE[1]
    ):
        raise BitstreamError(f"corrupt coin bitstream: invalid w0 ({w0}, {w0_initial})")
    count = num_params(hidden, layers)
    weights = container.section("WGTS")
    if len(weights) != 2 * count:  # checked before anything is allocated: bounded by the file's size
        raise BitstreamError(
            f"corrupt coin bitstream: WGTS holds {len(weights)} bytes; "
            f"a net of {layers} layers of width {hidden} needs {2 * count}"
        )
    macs, budget = count * container.height * container.width, container.limits.max_macs_per_pixel
    if count > budget:  # one forward pass per pixel: refuse before minutes of evaluation
        raise BitstreamError(
            f"implausible coin bitstream: {count} multiply-adds per pixel, {macs:.3g} in all "
            f"(limit {budget} per pixel, limits.max_macs_per_pixel)"
        )
    # coordinates and the output (float32, 2 + 3 per pixel, twice for the concatenation) plus the
    # activations of one chunk of pixels
    memory = container.height * container.width * 5 * 4 * 2 + RENDER_CHUNK * hidden * 4 * 2
    check_memory("coin bitstream", memory, container.limits)
    flat = ByteReader(weights, "coin WGTS section").array("<f2", count)
    if not np.isfinite(flat).all():
        raise BitstreamError("corrupt coin bitstream: non-finite weights")
    model = Siren(hidden, layers, w0, w0_initial, seed=None)
    values = torch.from_numpy(flat.astype(np.float32))
    flush_denormals(values)
    pos = 0
    with torch.no_grad():
        for lin in model.linears:
            for p in (lin.weight, lin.bias):
                p.copy_(values[pos : pos + p.numel()].reshape(p.shape))
                pos += p.numel()
    return DecodedCoin(model.to(device), container.height, container.width)


def read_container(data: bytes) -> Container:
    """The container of a ``coin`` file (the encoder previews what the decoder rebuilds)."""
    from ...codec import decode_container

    return decode_container(data)
