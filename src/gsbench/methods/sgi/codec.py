"""The SGI bitstream (Sec. 3.4): seeds, binary hash grid, MLPs and context-coded seed attributes.

Container method ``sgi``, N = S K Gaussians, sections (little-endian):

* ``HEAD``: ``version u8, K u8, F u16, MLP hidden u16, context hidden u16, unit u16, Q0 feature / scaling /
  offset f32 x 3, S u32, table_log2 u8, grid features u8, grid levels u8, resolutions u16 x levels``.
* ``SEED``: the seed positions (coarsest-level integers, x ``unit`` = pixels), :mod:`.positions`.
* ``HASH``: the binary grid's signs, one 1-bit symbol stream (ANS under their Bernoulli when smaller).
* ``MLPS``: every weight and bias of ``mlp_color``, ``mlp_cov`` and the context MLP as float16, in that
  order (``W1, b1, W2, b2`` each; shapes from ``HEAD``). The public code keeps them out of its bitstream and
  counts them at 32 bits; here they are in the file and counted at their 16 bits.
* ``FEAT``, ``SCAL``, ``OFFS``: the seed attributes in Morton order, seed-major, as symbols
  ``round(x / Q)`` (clamped to +-2^19): ``lo i32, hi i32`` (``lo < hi``), ``words u32``, ``words x u32`` of
  one constriction ``AnsCoder`` stream under per-symbol ``QuantizedGaussian(lo, hi)`` models whose mean
  and std (in symbol units) come from the context model. Seeds are processed in chunks of :data:`CHUNK`
  (encoded last chunk first, so the decoder reads forward with bounded memory).

Encoder and decoder compute the context on the CPU in float64 from the float16 weights and the +-1 grid,
round its outputs to multiples of 2^-20 and the coder's means and stds to 2^-16 (so a last-bit difference
between platforms cannot change a model), and dequantise with the same steps: ``x = symbol * Q``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...codec import DECODERS
from ...codec.container import BitstreamError, Container
from ...codec.streams import ByteReader, decode_symbols
from ..decoded import DecodedGaussians
from .context import GROUPS, STEP_FLOOR, gaussian_bits, group_dims, positive_scale, split_outputs
from .hashgrid import HashGridConfig, interpolate
from .model import normalise, seed_gaussians
from .positions import decode_positions

VERSION = 1
CHUNK = 16384
SYMBOL_LIMIT = 1 << 19
MAX_RANGE = 1 << 20  # constriction's QuantizedGaussian needs support < 2^23 at 24-bit precision
MAX_SYMBOLS = 1 << 27
MAX_GRID_VALUES = 1 << 24
MAX_MLP_VALUES = 1 << 22
HEAD_FMT = "<BBHHHHfffIBBB"
TAGS = {"feature": "FEAT", "scaling": "SCAL", "offset": "OFFS"}
OUTPUT_GRID = 2.0**-20
MODEL_GRID = 2.0**-16
STD_FLOOR = 1e-6  # symbol units; keeps constriction's std strictly positive


class Header:
    """The decoded ``HEAD`` section (and the layout it implies)."""

    def __init__(self, k, feature_dim, hidden, ctx_hidden, unit, q, seeds, grid: HashGridConfig):
        self.k, self.feature_dim, self.hidden, self.ctx_hidden = k, feature_dim, hidden, ctx_hidden
        # the file stores the steps as float32: the encoder must use exactly what the decoder will read
        self.q = {g: float(np.float32(v)) for g, v in q.items()}
        self.unit, self.seeds, self.grid = unit, seeds, grid
        self.dims = group_dims(feature_dim, k)

    def pack(self) -> bytes:
        g = self.grid
        head = struct.pack(
            HEAD_FMT, VERSION, self.k, self.feature_dim, self.hidden, self.ctx_hidden, self.unit,
            self.q["feature"], self.q["scaling"], self.q["offset"], self.seeds,
            g.table_log2, g.features, len(g.resolutions),
        )  # fmt: skip
        return head + struct.pack(f"<{len(g.resolutions)}H", *g.resolutions)

    @classmethod
    def read(cls, reader: ByteReader, num_gaussians: int) -> Header:
        version, k, f, hidden, ctx_hidden, unit, qf, qs, qo, s, t, gf, gl = reader.unpack(HEAD_FMT[1:])
        resolutions = reader.unpack(f"{gl}H")
        reader.finish()
        bad = reader.what
        if version != VERSION:
            raise BitstreamError(f"{bad}: version {version}, this gsbench reads {VERSION}")
        if not (1 <= k <= 64 and 1 <= f <= 1024 and 1 <= hidden <= 4096 and 1 <= ctx_hidden <= 4096):
            raise BitstreamError(f"corrupt {bad}: sizes K={k}, F={f}, hidden={hidden}, {ctx_hidden}")
        if unit < 1 or unit & (unit - 1) or unit > 1024:
            raise BitstreamError(f"corrupt {bad}: position unit {unit}")
        q = {"feature": qf, "scaling": qs, "offset": qo}
        if not all(math.isfinite(v) and 0 < v < 1e6 for v in q.values()):
            raise BitstreamError(f"corrupt {bad}: quantisation steps {q}")
        if s < 1 or s * k != num_gaussians:
            raise BitstreamError(f"corrupt {bad}: {s} seeds x {k} != {num_gaussians} Gaussians")
        grid = HashGridConfig(tuple(resolutions), t, gf)
        try:
            grid.validate()
        except ValueError as exc:
            raise BitstreamError(f"corrupt {bad}: {exc}") from None
        out = cls(k, f, hidden, ctx_hidden, unit, q, s, grid)
        if grid.entries * gf > MAX_GRID_VALUES or s * sum(out.dims) > MAX_SYMBOLS:
            raise BitstreamError(f"corrupt {bad}: grid or attribute count beyond the decoder's limits")
        if sum(math.prod(shape) for shape in out.mlp_shapes()) > MAX_MLP_VALUES:
            raise BitstreamError(f"corrupt {bad}: MLPs beyond the decoder's limits")
        return out

    def mlp_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the 12 stored tensors: ``W1, b1, W2, b2`` of colour, covariance and context MLPs."""
        f, h, k, ch = self.feature_dim, self.hidden, self.k, self.ctx_hidden
        out_ctx = 2 * sum(self.dims) + 3
        shapes = []
        for n_in, hid, n_out in ((f, h, 3 * k), (f, h, 3 * k), (self.grid.output_dim, ch, out_ctx)):
            shapes += [(hid, n_in), (hid,), (n_out, hid), (n_out,)]
        return shapes


def mlp_from(tensors: list[torch.Tensor]):
    """A two-layer ReLU MLP as a function of ``[N, in]`` from ``[W1, b1, W2, b2]``."""
    w1, b1, w2, b2 = tensors
    return lambda x: F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)


@torch.no_grad()
def coding_models(head: Header, table: torch.Tensor, ctx_mlp: list[torch.Tensor], xy01: torch.Tensor):
    """Per group ``(mean, std, step)`` ``[n, d]`` float64 of the seeds at ``xy01`` ``[n, 2]`` (one chunk).

    ``table`` is the +-1 grid ``[entries, F_h]`` and ``ctx_mlp`` the context MLP's tensors, all float64 on
    the CPU; means and stds are in symbol units (``/ Q``), rounded to :data:`MODEL_GRID`.
    """
    out = mlp_from(ctx_mlp)(interpolate(table, xy01, head.grid))
    out = torch.round(out / OUTPUT_GRID) * OUTPUT_GRID
    models = {}
    for group, (mean, scale, refine) in split_outputs(out, head.dims).items():
        q0 = head.q[group]
        step = q0 * (1 + torch.tanh(refine)).clamp_min(STEP_FLOOR)
        mu = torch.round(mean / step / MODEL_GRID) * MODEL_GRID
        sd = torch.round(positive_scale(scale) / step / MODEL_GRID) * MODEL_GRID
        models[group] = (mu, sd.clamp_min(STD_FLOOR), step.expand_as(mean))
    return models


def quantised_gaussian(lo: int, hi: int):
    import constriction

    return constriction.stream.model.QuantizedGaussian(lo, hi)


def read_stream(reader: ByteReader):
    """``(lo, hi, AnsCoder)`` of one attribute section."""
    import constriction

    lo, hi, words = reader.unpack("iiI")
    if not lo < hi or hi - lo >= MAX_RANGE:
        raise BitstreamError(f"corrupt {reader.what}: symbol range {lo}..{hi}")
    data = reader.array("<u4", words)
    reader.finish()
    try:
        return lo, hi, constriction.stream.stack.AnsCoder(data)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic is a BaseException
        raise BitstreamError(f"corrupt {reader.what}: invalid ANS words ({exc})") from None


def _decode_chunk(coder, family, mean: torch.Tensor, std: torch.Tensor, what: str) -> np.ndarray:
    m, s = mean.reshape(-1).numpy(), std.reshape(-1).numpy()
    if not (np.isfinite(m).all() and np.isfinite(s).all()):
        raise BitstreamError(f"corrupt {what}: the context model gives non-finite distributions")
    try:
        return coder.decode(family, m, s)
    except BaseException as exc:  # constriction panics (a BaseException) on some corrupt streams
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise BitstreamError(f"corrupt {what}: entropy decoding failed ({exc})") from None


def read_mlps(reader: ByteReader, head: Header) -> list[torch.Tensor]:
    """The 12 float16 tensors of ``MLPS`` (all finite, or BitstreamError)."""
    out = []
    for shape in head.mlp_shapes():
        values = reader.array("<f2", math.prod(shape))
        if not np.isfinite(values).all():
            raise BitstreamError(f"corrupt {reader.what}: non-finite weights")
        out.append(torch.from_numpy(values).reshape(shape))
    reader.finish()
    return out


def build_gaussians(head, seeds, attributes, mlps, height, width, device):
    """``(means, cov, colors)`` of seeds ``[S, 2]`` (coarse ints) with dequantised attributes."""
    positions = (torch.as_tensor(seeds, dtype=torch.float32) * head.unit).to(device)
    feature, scaling, offset = (attributes[g].to(device) for g in GROUPS)
    color = mlp_from([t.to(device) for t in mlps[0:4]])
    cov = mlp_from([t.to(device) for t in mlps[4:8]])
    offset = offset.reshape(head.seeds, head.k, 2)
    with torch.no_grad():
        return seed_gaussians(positions, feature, scaling, offset, color, cov)


@dataclass
class SGIParts:
    """Everything a file holds, decoded: what the encoder writes and the decoder reads.

    Attributes:
        head: the header. seeds: ``[S, 2]`` int64 coarse coordinates in Morton order.
        signs: ``[entries * F_h]`` int64 grid bits (1 = +1). mlps16: the 12 float16 MLP tensors.
        symbols: per group ``[S, d]`` int32. values: per group ``[S, d]`` float32 dequantised attributes.
    """

    head: Header
    seeds: np.ndarray
    signs: np.ndarray
    mlps16: list[torch.Tensor]
    symbols: dict[str, torch.Tensor]
    values: dict[str, torch.Tensor]

    def context_inputs(self, height: int, width: int):
        """``(table [entries, F_h], context MLP tensors, xy01 [S, 2])``, float64 on the CPU."""
        table = torch.from_numpy(self.signs * 2.0 - 1.0).reshape(self.head.grid.entries, -1)
        ctx_mlp = [t.double() for t in self.mlps16[8:12]]
        xy01 = normalise(torch.from_numpy(self.seeds) * self.head.unit, height, width)
        return table, ctx_mlp, xy01

    def gaussians(self, height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(means, cov, colors)`` rebuilt from the dequantised attributes (decoder and preview alike)."""
        mlps = [t.float() for t in self.mlps16]
        return build_gaussians(self.head, self.seeds, self.values, mlps, height, width, device)


def read_sgi(c: Container) -> SGIParts:
    """Parse and entropy-decode every section of an ``sgi`` container (BitstreamError if malformed)."""
    head = Header.read(ByteReader(c.section("HEAD"), "sgi section HEAD"), c.num_gaussians)
    macs = head.seeds * sum(math.prod(shape) for shape in head.mlp_shapes())
    budget = max(1 << 28, c.limits.max_mlp_macs_per_pixel * c.height * c.width)
    if macs > budget:  # the MLPs run once per seed: refuse before hours of context modelling
        raise BitstreamError(
            f"implausible sgi bitstream: {head.seeds} seeds through its MLPs need {macs:.3g} multiply-adds "
            f"(limit {budget:.3g}, limits.max_mlp_macs_per_pixel)"
        )
    max_x, max_y = (c.width - 1) // head.unit, (c.height - 1) // head.unit
    seeds = decode_positions(ByteReader(c.section("SEED"), "sgi section SEED"), head.seeds, max_x, max_y)
    reader = ByteReader(c.section("HASH"), "sgi section HASH")
    signs = decode_symbols(reader, 1, head.grid.entries * head.grid.features)
    reader.finish()
    mlps16 = read_mlps(ByteReader(c.section("MLPS"), "sgi section MLPS"), head)
    parts = SGIParts(head, seeds, signs, mlps16, {}, {})
    table, ctx_mlp, xy01 = parts.context_inputs(c.height, c.width)
    streams = {g: read_stream(ByteReader(c.section(TAGS[g]), f"sgi section {TAGS[g]}")) for g in GROUPS}
    families = {g: quantised_gaussian(streams[g][0], streams[g][1]) for g in GROUPS}
    syms: dict[str, list] = {g: [] for g in GROUPS}
    vals: dict[str, list] = {g: [] for g in GROUPS}
    for start in range(0, head.seeds, CHUNK):
        models = coding_models(head, table, ctx_mlp, xy01[start : start + CHUNK])
        for group, (mean, std, step) in models.items():
            what = f"sgi section {TAGS[group]}"
            sym = torch.from_numpy(_decode_chunk(streams[group][2], families[group], mean, std, what))
            sym = sym.to(torch.int32)  # |symbols| <= 2^19 + 2^20: int32 halves the memory
            syms[group].append(sym.reshape(step.shape))
            vals[group].append((syms[group][-1] * step).float())
    for group in GROUPS:
        if not streams[group][2].is_empty():
            raise BitstreamError(f"corrupt sgi section {TAGS[group]}: data left after the last symbol")
    parts.symbols = {g: torch.cat(syms[g]) for g in GROUPS}
    parts.values = {g: torch.cat(vals[g]) for g in GROUPS}
    return parts


@DECODERS.register("sgi")
def decode_sgi(c: Container, device: torch.device, options) -> DecodedGaussians:
    """Rebuild the Gaussians of an ``sgi`` file from its sections alone."""
    means, cov, colors = read_sgi(c).gaussians(c.height, c.width, device)
    return DecodedGaussians(
        means, cov, colors, c.height, c.width, options, c.limits, "sgi bitstream", c.nbytes
    )


def attribute_bits(sym: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> float:
    """Estimated bits of integer symbols under the (symbol-unit) Gaussians: the paper's rate formula."""
    return float(gaussian_bits(sym.double(), mean, std, 1.0).sum())
