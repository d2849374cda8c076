"""Lossless coding of the seed positions: Morton order and entropy-coded deltas.

The paper codes the seeds with MPEG G-PCC (``tmc3``), which gsbench cannot ship; this is the substitute.
The seeds are integer points of the coarsest pyramid level. Their Morton (Z-order) codes, 16 bits per
axis interleaved, are sorted; each delta ``d`` between consecutive codes (the first from 0) is written as
its bit length ``n`` (0 for d = 0) and, for ``n >= 2``, its ``n - 1`` low bits (the top bit is implied).
The lengths are one symbol stream (:func:`gsbench.codec.streams.encode_symbols`: ANS under their
histogram when smaller than raw); the low bits are packed raw, LSB first. Section layout::

    symbol stream of S lengths (6-bit symbols) | ceil(sum(max(n - 1, 0)) / 8) bytes of low bits

The decoder checks every length against the bytes present, that the codes strictly increase (seeds are
distinct) and that every seed lies inside the image.
"""

from __future__ import annotations

import numpy as np

from ...codec.container import BitstreamError
from ...codec.streams import ByteReader, decode_symbols, encode_symbols

LENGTH_BITS = 6  # bit lengths 0..32 of 32-bit code deltas


def _spread(v: np.ndarray) -> np.ndarray:
    """Insert a zero bit between the 16 low bits of ``v`` (uint64)."""
    v = v.astype(np.uint64) & np.uint64(0xFFFF)
    for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _compact(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread`."""
    v = v.astype(np.uint64) & np.uint64(0x55555555)
    for shift, mask in ((1, 0x33333333), (2, 0x0F0F0F0F), (4, 0x00FF00FF), (8, 0x0000FFFF)):
        v = (v | (v >> np.uint64(shift))) & np.uint64(mask)
    return v


def morton_codes(xy: np.ndarray) -> np.ndarray:
    """``[S]`` uint64 Z-order codes of integer points ``xy`` ``[S, 2]`` (each coordinate < 2^16)."""
    xy = np.asarray(xy, dtype=np.int64)
    if xy.size and (xy.min() < 0 or xy.max() >= 1 << 16):
        raise ValueError("seed coordinates must lie in [0, 2^16)")
    return _spread(xy[:, 0]) | (_spread(xy[:, 1]) << np.uint64(1))


def morton_order(xy: np.ndarray) -> np.ndarray:
    """``[S]`` the permutation that sorts ``xy`` ``[S, 2]`` by Morton code (stable)."""
    return np.argsort(morton_codes(xy), kind="stable")


def encode_positions(xy: np.ndarray) -> bytes:
    """The section for distinct integer points ``xy`` ``[S, 2]`` already in Morton order."""
    codes = morton_codes(xy).astype(np.int64)
    deltas = np.diff(codes, prepend=0)
    if len(deltas) > 1 and deltas[1:].min() <= 0:
        raise ValueError("seed positions must be distinct and in Morton order")
    lengths = np.zeros(len(deltas), dtype=np.int64)
    for j in range(33):
        lengths += deltas >= np.int64(1) << j
    low = np.maximum(lengths - 1, 0)
    starts = np.concatenate([[0], np.cumsum(low)[:-1]]) if len(low) else low
    stream = np.zeros(int(low.sum()), dtype=np.uint8)
    for j in range(32):  # the low bits of every delta, LSB first, deltas one after another
        has = np.flatnonzero(low > j)
        stream[starts[has] + j] = (deltas[has] >> j) & 1
    packed = np.packbits(stream, bitorder="little").tobytes()
    return encode_symbols(lengths, LENGTH_BITS, entropy=True) + packed


def decode_positions(reader: ByteReader, count: int, max_x: int, max_y: int) -> np.ndarray:
    """``[count, 2]`` int64 points read from ``reader`` (which must then be exhausted).

    Raises:
        BitstreamError: inconsistent lengths, repeated points, or points outside ``[0, max_x] x [0, max_y]``.
    """
    lengths = decode_symbols(reader, LENGTH_BITS, count)
    if lengths.size and lengths.max() > 32:
        raise BitstreamError(f"corrupt {reader.what}: a position delta longer than 32 bits")
    if count > 1 and lengths[1:].min() < 1:
        raise BitstreamError(f"corrupt {reader.what}: repeated seed position")
    low = np.maximum(lengths - 1, 0)
    total = int(low.sum())
    raw = np.frombuffer(reader.take((total + 7) // 8), dtype=np.uint8)
    reader.finish()
    stream = np.unpackbits(raw, bitorder="little")[:total]
    starts = np.concatenate([[0], np.cumsum(low)[:-1]]) if count else low
    mantissa = np.zeros(count, dtype=np.int64)
    for j in range(32):  # bit j of every delta that has one: O(S) memory, no S x 32 matrix
        has = np.flatnonzero(low > j)
        mantissa[has] |= stream[starts[has] + j].astype(np.int64) << j
    top = np.where(lengths >= 1, np.int64(1) << np.maximum(lengths - 1, 0), 0)
    codes = np.cumsum(top | mantissa)
    if codes.size and codes[-1] >= 1 << 32:
        raise BitstreamError(f"corrupt {reader.what}: position code out of range")
    codes = codes.astype(np.uint64)
    xy = np.stack([_compact(codes), _compact(codes >> np.uint64(1))], axis=1).astype(np.int64)
    if xy.size and (xy[:, 0].max() > max_x or xy[:, 1].max() > max_y):
        raise BitstreamError(f"corrupt {reader.what}: a seed lies outside the image")
    return xy
