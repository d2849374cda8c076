"""Byte-level building blocks of the sections: bounded readers, bit packing and symbol streams.

A *symbol stream* holds ``count`` unsigned integers of ``bits`` bits each (``count`` and ``bits`` are
known to the decoder from the header). Its first byte is the mode:

* ``0`` raw: the symbols bit-packed, LSB first, ``ceil(count * bits / 8)`` bytes.
* ``1`` ANS, categorical: ``lo u16, hi u16``, the histogram over ``lo..hi`` as LEB128 varints, a word count
  ``u32`` and the ANS words (``u32``); constriction's stack coder under the empirical distribution.
* ``2`` ANS, quantised Gaussian: ``lo u16, hi u16, mean f32, std f32``, a word count and the words.

With ``entropy=True`` the encoder writes all three and keeps the smallest, so entropy coding never
costs more than raw packing (the histogram and model are side information, counted in the file).
"""

from __future__ import annotations

import struct

import numpy as np

from .container import BitstreamError

RAW, ANS_HIST, ANS_GAUSS = 0, 1, 2
MAX_BITS = 16


class ByteReader:
    """Reads from ``data`` and raises :class:`BitstreamError` naming ``what`` when it runs out."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(f"truncated {self.what}: needs {n} more bytes, {self.remaining} remain")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        """``count`` values of numpy ``dtype`` (e.g. ``'<f4'``), copied so they are writable."""
        size = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(size * count), dtype=dtype).copy()

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 35:
                raise BitstreamError(f"corrupt {self.what}: varint longer than 5 bytes")

    def finish(self) -> None:
        """Every byte must have been read: trailing garbage is corruption."""
        if self.remaining:
            raise BitstreamError(f"corrupt {self.what}: {self.remaining} unexpected trailing bytes")


def varint(value: int) -> bytes:
    """LEB128 encoding of a non-negative integer."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pack_uint(symbols: np.ndarray, bits: int) -> bytes:
    """Bit-pack ``symbols`` ``[n]`` (each < 2**bits), LSB first."""
    sym = np.asarray(symbols, dtype=np.uint32)
    bitmat = (sym[:, None] >> np.arange(bits, dtype=np.uint32)[None, :]) & 1
    return np.packbits(bitmat.astype(np.uint8).reshape(-1), bitorder="little").tobytes()


def unpack_uint(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_uint`: ``[count]`` int64."""
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[: count * bits]
    bitmat = flat.reshape(count, bits).astype(np.int64)
    return (bitmat << np.arange(bits, dtype=np.int64)[None, :]).sum(axis=1)


def encode_symbols(symbols: np.ndarray, bits: int, entropy: bool) -> bytes:
    """One symbol stream (mode byte + body) for ``symbols`` ``[n]`` in ``[0, 2**bits)``."""
    sym = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be in 1..{MAX_BITS}, got {bits}")
    if sym.size and (sym.min() < 0 or sym.max() >= 1 << bits):
        raise ValueError(f"symbols outside [0, 2**{bits})")
    candidates = [bytes([RAW]) + pack_uint(sym, bits)]
    if entropy and sym.size and sym.min() < sym.max():
        # one distinct symbol has no ANS model (constriction refuses a one-symbol alphabet): raw it is
        candidates += [_encode_hist(sym), _encode_gauss(sym)]
    return min(candidates, key=len)  # ties keep the earlier (simpler) mode


def decode_symbols(reader: ByteReader, bits: int, count: int) -> np.ndarray:
    """Read one symbol stream of ``count`` symbols from ``reader``: ``[count]`` int64.

    Every parameter that reaches the entropy coder is checked against what :func:`encode_symbols` can
    write (an ANS stream always has at least two distinct symbols, a Gaussian model's mean lies in its
    range and its std in ``[0.5, 2^bits]``), so constriction never sees a model it would reject or panic on.
    """
    if not 1 <= bits <= MAX_BITS or count < 0:
        raise BitstreamError(f"corrupt {reader.what}: {count} symbols of {bits} bits")
    (mode,) = reader.unpack("B")
    if mode == RAW:
        return unpack_uint(reader.take((count * bits + 7) // 8), bits, count)
    if mode not in (ANS_HIST, ANS_GAUSS):
        raise BitstreamError(f"corrupt {reader.what}: unknown symbol-stream mode {mode}")
    lo, hi = reader.unpack("HH")
    if not lo < hi < 1 << bits:
        raise BitstreamError(f"corrupt {reader.what}: symbol range {lo}..{hi} for {bits}-bit symbols")
    if count == 0:
        raise BitstreamError(f"corrupt {reader.what}: an entropy-coded stream of zero symbols")
    if mode == ANS_HIST:
        counts = np.array([reader.varint() for _ in range(hi - lo + 1)], dtype=np.float64)
        if counts.sum() != count:
            raise BitstreamError(f"corrupt {reader.what}: histogram sums to {counts.sum():.0f}, not {count}")
        present = np.flatnonzero(counts)
        if present.size < 2:
            raise BitstreamError(f"corrupt {reader.what}: a histogram with fewer than two symbols")
        params: tuple = (counts[present],)
    else:
        mean, std = reader.unpack("ff")
        if not (np.isfinite(mean) and np.isfinite(std) and lo <= mean <= hi and 0.5 <= std <= 1 << bits):
            raise BitstreamError(f"corrupt {reader.what}: invalid Gaussian model ({mean}, {std})")
        params = (lo, hi, mean, std)
    (words,) = reader.unpack("I")
    compressed = reader.array("<u4", words)
    decoded = entropy_decode(reader.what, compressed, mode, params, count)
    if decoded.shape != (count,):
        raise BitstreamError(f"corrupt {reader.what}: entropy decoding gave {decoded.shape} symbols")
    return present[decoded] + lo if mode == ANS_HIST else decoded


def entropy_decode(what: str, words: np.ndarray, mode: int, params: tuple, count: int) -> np.ndarray:
    """Decode ``count`` symbols with constriction; any failure, a Rust panic included, is a BitstreamError.

    pyo3 raises a panic as ``PanicException``, which derives from ``BaseException``: ``except Exception``
    would let it kill a sweep worker. Only Ctrl-C and ``sys.exit`` go through unchanged.
    """
    import constriction

    try:
        model = _categorical(*params) if mode == ANS_HIST else _gaussian(*params)
        out = constriction.stream.stack.AnsCoder(words).decode(model, count)
        return np.asarray(out).astype(np.int64)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a Rust panic (see the docstring)
        raise BitstreamError(
            f"corrupt {what}: entropy decoding failed ({type(exc).__name__}: {exc})"
        ) from None


def _encode_hist(sym: np.ndarray) -> bytes:
    lo, hi = int(sym.min()), int(sym.max())
    counts = np.bincount(sym - lo, minlength=hi - lo + 1)
    present = np.flatnonzero(counts)
    index = np.searchsorted(present, sym - lo)  # symbols -> positions in the present alphabet
    head = bytes([ANS_HIST]) + struct.pack("<HH", lo, hi) + b"".join(varint(int(c)) for c in counts)
    return head + _ans(index, _categorical(counts[present].astype(np.float64)))


def _encode_gauss(sym: np.ndarray) -> bytes:
    lo, hi = int(sym.min()), int(sym.max())
    # f32 round trip first: the decoder builds its model from the stored f32 values.
    mean, std = (float(np.float32(v)) for v in (sym.mean(), max(sym.std(), 0.5)))
    head = bytes([ANS_GAUSS]) + struct.pack("<HHff", lo, hi, mean, std)
    return head + _ans(sym, _gaussian(lo, hi, mean, std))


def _ans(symbols: np.ndarray, model) -> bytes:
    import constriction

    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(symbols.astype(np.int32), model)
    words = coder.get_compressed()
    return struct.pack("<I", len(words)) + words.astype("<u4").tobytes()


def _categorical(counts: np.ndarray):
    import constriction

    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def _gaussian(lo: int, hi: int, mean: float, std: float):
    import constriction

    return constriction.stream.model.QuantizedGaussian(lo, hi, mean, std)
