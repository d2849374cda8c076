"""Image-GS's attribute format, renderer choice and bitstream (the ``compress`` task), decoder included.

Attributes per Gaussian, in this column order: position ``x, y`` in [0, 1] (pixel ``j`` has its centre at
``(j + 0.5) / W``), two scales (stored as inverse scales ``1/s`` in 1/px, or as ``s`` in px with
``inverse_scale`` off), a rotation angle in radians, and ``C`` colour channels: ``5 + C`` values.

Bitstream (inside :mod:`gsbench.codec.container`, method ``image_gs``), little-endian:

* ``HEAD``: format u8 (1) | channels u8 | bits u8 | mode u8 (0 top-K normalised, 1 top-K sum, 2 sum of all)
  | k u8 | flags u8 (bit 0: scales stored inverted, bit 1: 1/255 cut-off, bit 2: tile footprint) | eps f32
  | ``5 + C`` x (min f32, max f32);
* ``ATTR``: ``5 + C`` symbol streams (:func:`gsbench.codec.streams.encode_symbols`), one per column,
  ``N`` symbols of ``bits`` bits each: min-max uniform quantisation
  ``q = round((v - min) / step)``, ``step = (max - min) / (2^bits - 1)``, ``v = min (1 - t) + max t`` with
  ``t = q / (2^bits - 1)`` in float32.

Gaussians keep their training order (the order they were added in), so a prefix is a coarser image.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace

import numpy as np
import torch

from ...codec import DECODERS, BitstreamError, Container, check_output, check_render_budget, encode_container
from ...codec.guard import check_memory, flush_denormals
from ...codec.streams import ByteReader, decode_symbols, encode_symbols
from ...gaussians import RenderOptions, render, render_topk, scale_rot_to_cov

FORMAT = 1
MODES = ("topk_norm", "topk_sum", "sum")
MAX_CHANNELS = 64
MAX_K = 64
SCALE_RANGE = (2.0**-20, 2.0**20)  # pixels; a file outside it is refused (it would not render sanely)


@dataclass(frozen=True)
class RenderSpec:
    """How Image-GS attributes become pixels (all of it is stored in the file's header).

    Attributes:
        inverse_scale: the scale columns hold ``1/s`` (else ``s``), in 1/px (px).
        mode: one of :data:`MODES`.
        k, eps: Gaussians kept per pixel and the normaliser's epsilon (top-K modes).
        cutoff: skip weights below 1/255 (replaces ``RenderOptions.cutoff``; Image-GS's kernel has none).
        footprint: the top-K renderer's ``pixel`` or ``tile`` footprint (``sum`` mode: always pixel).
    """

    inverse_scale: bool = True
    mode: str = "topk_norm"
    k: int = 10
    eps: float = 1e-4
    cutoff: bool = False
    footprint: str = "pixel"

    @property
    def flags(self) -> int:
        return int(self.inverse_scale) | int(self.cutoff) << 1 | int(self.footprint == "tile") << 2


def to_gaussians(values: torch.Tensor, height: int, width: int, inverse_scale: bool):
    """Means ``[N, 2]`` in pixels, packed covariances ``[N, 3]`` and colours from ``values [N, 5 + C]``."""
    size = torch.tensor([width, height], dtype=values.dtype, device=values.device)
    means = values[:, :2] * size - 0.5  # [0, 1] spans the image edge to edge; pixel centres are integers
    scale = 1.0 / values[:, 2:4] if inverse_scale else values[:, 2:4]
    cov = scale_rot_to_cov(scale, values[:, 4])
    return means, cov, values[:, 5:]


def render_values(
    values: torch.Tensor, height: int, width: int, options: RenderOptions, spec: RenderSpec
) -> torch.Tensor:
    """Render ``[C, H, W]`` from Image-GS attributes ``values [N, 5 + C]`` as ``spec`` says."""
    means, cov, colors = to_gaussians(values, height, width, spec.inverse_scale)
    options = replace(options, cutoff=spec.cutoff)
    if spec.mode == "sum":
        return render(means, cov, colors, height, width, options)
    normalise = spec.mode == "topk_norm"
    return render_topk(
        means, cov, colors, height, width, options, spec.k, normalise, spec.eps, footprint=spec.footprint
    )


def value_range(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column min and max ``[5 + C]`` as float32 (what the file stores)."""
    v = values.detach().float()
    return v.amin(0), v.amax(0)


def quantise(values: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes ``[N, 5 + C]`` in ``[0, 2^bits)`` (int64)."""
    qmax = (1 << bits) - 1
    step = (hi - lo) / qmax
    safe = torch.where(step > 0, step, torch.ones_like(step))
    q = torch.round((values.detach().float() - lo) / safe).clamp(0, qmax)
    return torch.where(step > 0, q, torch.zeros_like(q)).long()


def dequantise(symbols: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """``min (1 - t) + max t``, ``t = q / (2^bits - 1)``, in float32: the formula encoder and decoder share.

    Equal to ``min + q step`` up to rounding, but exact at both ends, so the dequantised values have the
    stored min and max again and re-encoding them reproduces the file byte for byte.
    """
    t = symbols.float() / ((1 << bits) - 1)
    return lo.float() * (1 - t) + hi.float() * t


def fake_quantise(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise-dequantise with the current min/max, identity gradient (quantisation-aware training)."""
    lo, hi = value_range(values)
    deq = dequantise(quantise(values, lo, hi, bits), lo, hi, bits).to(values.dtype)
    return values + (deq - values).detach()


@dataclass
class ImageGSDecoded:
    """Gaussians rebuilt from a file (or the encoder's quantised copy), rendered as Image-GS does."""

    values: torch.Tensor
    height: int
    width: int
    options: RenderOptions
    spec: RenderSpec

    @property
    def num_gaussians(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_params(self) -> int:
        return int(self.values.numel())

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        """``[C, H, W]`` decoded image (raw); BitstreamError if it is not finite."""
        return check_output(
            "image_gs bitstream", render_values(self.values, self.height, self.width, self.options, self.spec)
        )


def encode(
    values: torch.Tensor, height: int, width: int, spec: RenderSpec, *, bits: int, entropy: bool
) -> tuple[bytes, torch.Tensor]:
    """The file's bytes and the dequantised values ``[N, 5 + C]`` (float32, on the values' device)."""
    values = values.detach()
    n, cols = values.shape
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    if not 1 <= cols - 5 <= MAX_CHANNELS:
        raise ValueError(f"Image-GS stores 1..{MAX_CHANNELS} colour channels, got {cols - 5}")
    lo, hi = value_range(values)
    sym = quantise(values, lo, hi, bits)
    fields = (FORMAT, cols - 5, bits, MODES.index(spec.mode), spec.k, spec.flags, spec.eps)
    head = struct.pack("<BBBBBBf", *fields)
    head += np.stack([lo.cpu().numpy(), hi.cpu().numpy()], 1).astype("<f4").tobytes()
    sym_np = sym.cpu().numpy()
    body = b"".join(encode_symbols(sym_np[:, i], bits, entropy) for i in range(cols))
    data = encode_container(Container("image_gs", height, width, n, {"HEAD": head, "ATTR": body}))
    return data, dequantise(sym, lo, hi, bits)


@DECODERS.register("image_gs")
def decode(container: Container, device: torch.device, options: RenderOptions | None) -> ImageGSDecoded:
    """Rebuild the Gaussians from a parsed container; every field is checked before it is used."""
    head = ByteReader(container.section("HEAD"), "image_gs HEAD section")
    fmt, channels, bits, mode, k, flags = head.unpack("BBBBBB")
    (eps,) = head.unpack("f")
    if fmt != FORMAT:
        raise BitstreamError(f"unsupported image_gs format {fmt} (this gsbench reads {FORMAT})")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BitstreamError(f"corrupt image_gs header: {channels} colour channels (1..{MAX_CHANNELS})")
    if not 1 <= bits <= 16 or mode >= len(MODES) or not 1 <= k <= MAX_K or flags & ~7:
        raise BitstreamError(f"corrupt image_gs header: bits {bits}, mode {mode}, k {k}, flags {flags:#x}")
    if not (math.isfinite(eps) and eps > 0):  # eps 0 divides 0 by 0 where no Gaussian reaches
        raise BitstreamError(f"corrupt image_gs header: eps {eps}")
    cols = 5 + channels
    ranges = head.array("<f4", 2 * cols).reshape(cols, 2)
    head.finish()
    lo, hi = ranges[:, 0], ranges[:, 1]
    if not (np.all(np.isfinite(ranges)) and np.all(lo <= hi)):
        raise BitstreamError("corrupt image_gs header: a min/max pair is not finite or min > max")
    inverse = bool(flags & 1)
    if np.any(lo[2:4] <= 0):
        raise BitstreamError("corrupt image_gs header: a stored scale range is not positive")
    with np.errstate(divide="ignore", over="ignore"):  # 1 / a denormal is inf: refused just below
        s_lo, s_hi = (1.0 / hi[2:4], 1.0 / lo[2:4]) if inverse else (lo[2:4], hi[2:4])
    if np.any(s_lo < SCALE_RANGE[0]) or np.any(s_hi > SCALE_RANGE[1]):
        raise BitstreamError(f"corrupt image_gs header: scales outside {SCALE_RANGE} px")
    n = container.num_gaussians  # checked against the image size and the file size by the container
    # symbols (int64), their stacked copy and the float32 values, before anything is allocated
    check_memory("image_gs bitstream", n * cols * (8 + 8 + 4), container.limits)
    body = ByteReader(container.section("ATTR"), "image_gs ATTR section")
    sym = np.stack([decode_symbols(body, bits, n) for _ in range(cols)], 1)
    body.finish()
    values = dequantise(
        torch.from_numpy(sym).to(device),
        torch.from_numpy(lo).to(device),
        torch.from_numpy(hi).to(device),
        bits,
    )
    footprint = "tile" if flags & 4 else "pixel"
    spec = RenderSpec(inverse, MODES[mode], int(k), float(eps), bool(flags & 2), footprint)
    flush_denormals(values)
    means, cov, colors = to_gaussians(values, container.height, container.width, inverse)
    # finite, bounded colours, render work and memory within the limits: checked before any render
    check_render_budget(
        "image_gs bitstream",
        means,
        cov,
        colors,
        container.height,
        container.width,
        container.limits,
        container.nbytes,
    )
    options = options or RenderOptions()  # decode_bitstream without options: the renderer's defaults
    return ImageGSDecoded(values, container.height, container.width, options, spec)
