"""The gsbench bitstream container: a small header, a section table, the sections, a CRC-32.

Layout (little-endian; docs/bitstream.md is the normative description)::

    magic "GSBF" | version u8 | name length u8 | method name (ASCII) | H u32 | W u32 | N u32
    | section count u8 | count x (tag 4 ASCII bytes, length u32) | sections' bytes | CRC-32 u32

The decoder trusts nothing: every length is checked against the bytes that are really there and against
:class:`Limits` *before* anything is allocated, so a truncated, flipped or hostile file fails fast with a
:class:`BitstreamError` that says what is wrong, never with a crash, a hang or a huge allocation.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

from ..errors import UserError

MAGIC = b"GSBF"
VERSION = 1
_NAME_RE = re.compile(rb"[a-z0-9_]{1,32}")
_TAG_RE = re.compile(rb"[A-Z0-9]{4}")


class BitstreamError(UserError, ValueError):
    """A file that is not a valid gsbench bitstream (truncated, corrupt, wrong version, absurd sizes)."""


@dataclass(frozen=True)
class Limits:
    """What a decoder accepts; anything larger is refused before allocation.

    Attributes:
        max_side, max_pixels: the declared image size (``limits.max_pixels`` on the command line).
        min_bits_per_pixel: a file of ``B`` bytes may declare at most ``8 B / min_bits_per_pixel`` pixels
            (``limits.min_bits_per_pixel``), or ``free_pixels`` whatever its size. The methods' lowest real
            rates are 0.07-0.15 bpp; 1/32 bpp keeps a 40 KB (Kodak-size) file to 10 Mpx and a 5 KB one
            to 4 Mpx (not 134: a 40 s, multi-GB render), while ``free_pixels`` (4 Mpx, about a second
            and 200 MB to render) lets a handful of Gaussians describe a Kodak image.
        max_gaussians, max_gaussians_per_pixel: primitives in the header.
        min_bits_per_gaussian: a file of ``B`` bytes may declare at most ``8 B / min_bits_per_gaussian``
            primitives (real files spend 20-130 bits on each, SGI about one).
        max_evals_per_pixel, max_evals_per_bit, min_eval_budget: the work a render may take, estimated
            from the decoded primitives' footprints (8 x 8 tiles, 64 evaluations each) before rendering:
            at most ``max(min_eval_budget, max_evals_per_pixel H W, max_evals_per_bit 8 B)``
            Gaussian-pixel evaluations for a file of ``B`` bytes. Real files stay under one or the
            other: many small Gaussians use 10-30 per pixel (a 5,000-Gaussian gi_pp Kodak fit: 10),
            few large ones (SGI: 110 per pixel) 10-40 per bit of file; a gi_pp Kodak file whose
            covariances are blown up asks for 128 per pixel and 168 per bit, and is refused.
        max_memory_bytes: estimated decoder + renderer memory.
        max_macs_per_pixel: multiply-adds per pixel of a coordinate network (COIN; 13 x 49 nets use 30k).
        max_mlp_macs_per_pixel: multiply-adds per pixel of per-primitive MLPs (SGI uses a few hundred).
    """

    max_side: int = 1 << 16  # pixels per side
    max_pixels: int = 1 << 27  # H x W (134 Mpx; the render alone is 1.6 GB in float32)
    min_bits_per_pixel: float = 1.0 / 32
    free_pixels: int = 1 << 22
    max_gaussians: int = 1 << 24
    max_gaussians_per_pixel: int = 4
    min_bits_per_gaussian: float = 1.0 / 8
    max_sections: int = 16
    max_evals_per_pixel: int = 64
    max_evals_per_bit: int = 64
    min_eval_budget: int = 1 << 20
    max_memory_bytes: int = 8 << 30
    max_macs_per_pixel: int = 1 << 16
    max_mlp_macs_per_pixel: int = 1 << 12


DEFAULT_LIMITS = Limits()
_current = [DEFAULT_LIMITS]


def current_limits() -> Limits:
    """The limits decoders apply unless given others (set once per job from the config)."""
    return _current[0]


def set_limits(limits: Limits) -> None:
    """Make ``limits`` the default of :func:`decode_container` (the runner calls it with the config's)."""
    _current[0] = limits


@dataclass
class Container:
    """A decoded container: who wrote it, the image size, the primitive count and named sections."""

    method: str
    height: int
    width: int
    num_gaussians: int
    sections: dict[str, bytes] = field(default_factory=dict)
    limits: Limits = field(default=DEFAULT_LIMITS, compare=False, repr=False)
    nbytes: int = field(default=0, compare=False, repr=False)  # the file's size (plausibility checks)

    def section(self, tag: str) -> bytes:
        """The bytes of section ``tag``; a clear error when the file has none."""
        if tag not in self.sections:
            raise BitstreamError(
                f"{self.method} bitstream has no {tag!r} section (has {list(self.sections)})"
            )
        return self.sections[tag]


def encode_container(c: Container) -> bytes:
    """Serialise ``c``; the inverse of :func:`decode_container` (byte-for-byte deterministic)."""
    name = c.method.encode("ascii")
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"method name must match [a-z0-9_]{{1,32}}, got {c.method!r}")
    _check_sizes(c.height, c.width, c.num_gaussians, DEFAULT_LIMITS)
    if len(c.sections) > DEFAULT_LIMITS.max_sections:
        raise ValueError(f"at most {DEFAULT_LIMITS.max_sections} sections, got {len(c.sections)}")
    head = [MAGIC, struct.pack("<BB", VERSION, len(name)), name]
    head.append(struct.pack("<IIIB", c.height, c.width, c.num_gaussians, len(c.sections)))
    for tag, body in c.sections.items():
        btag = tag.encode("ascii")
        if not _TAG_RE.fullmatch(btag):
            raise ValueError(f"section tags are 4 characters [A-Z0-9], got {tag!r}")
        head.append(btag + struct.pack("<I", len(body)))
    out = b"".join(head) + b"".join(c.sections.values())
    return out + struct.pack("<I", zlib.crc32(out))


def decode_container(data: bytes, limits: Limits | None = None, verify_crc: bool = True) -> Container:
    """Parse and validate a container.

    Args:
        data: the whole file.
        limits: sizes beyond these are refused (default: :func:`current_limits`); decoders read them
            from the returned container.
        verify_crc: check the trailing CRC-32 (tests turn it off to reach the parsers behind it).
    Raises:
        BitstreamError: with the reason, for anything that is not a well-formed container.
    """
    data = bytes(data)
    limits = limits or current_limits()
    if len(data) < 4 or data[:4] != MAGIC:
        raise BitstreamError("not a gsbench bitstream: the file does not start with the magic 'GSBF'")
    if len(data) < 6:
        raise BitstreamError("truncated bitstream: the header ends after the magic")
    version, name_len = data[4], data[5]
    if version != VERSION:
        raise BitstreamError(
            f"unsupported bitstream version {version} (this gsbench reads version {VERSION})"
        )
    pos = 6 + name_len
    fixed = pos + 13
    if len(data) < fixed + 4:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes, the header alone needs {fixed + 4}")
    if verify_crc:
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        if zlib.crc32(data[:-4]) != crc:
            raise BitstreamError("corrupt bitstream: CRC-32 mismatch (the file was truncated or altered)")
    name = data[6:pos]
    if not _NAME_RE.fullmatch(name):
        raise BitstreamError(f"corrupt bitstream: invalid method name {name!r}")
    height, width, n, count = struct.unpack_from("<IIIB", data, pos)
    _check_sizes(height, width, n, limits, error=BitstreamError)
    plausible = max(limits.free_pixels, len(data) * 8 / limits.min_bits_per_pixel)
    if height * width > plausible:
        raise BitstreamError(
            f"implausible bitstream: {len(data)} bytes cannot describe a {height}x{width} image "
            f"(under {limits.min_bits_per_pixel:.2g} bits per pixel)"
        )
    if n > len(data) * 8 / limits.min_bits_per_gaussian:
        raise BitstreamError(
            f"implausible bitstream: {len(data)} bytes cannot describe {n} Gaussians "
            f"(under {limits.min_bits_per_gaussian:.2g} bits each)"
        )
    if count > limits.max_sections:
        raise BitstreamError(f"corrupt bitstream: {count} sections (at most {limits.max_sections})")
    pos = fixed
    table_end = pos + 8 * count
    if table_end > len(data) - 4:
        raise BitstreamError("truncated bitstream: the section table runs past the end of the file")
    entries = []
    for _ in range(count):
        tag = data[pos : pos + 4]
        (length,) = struct.unpack_from("<I", data, pos + 4)
        if not _TAG_RE.fullmatch(tag):
            raise BitstreamError(f"corrupt bitstream: invalid section tag {tag!r}")
        entries.append((tag.decode("ascii"), length))
        pos += 8
    body_end = len(data) - 4
    sections: dict[str, bytes] = {}
    for tag, length in entries:
        if pos + length > body_end:
            raise BitstreamError(
                f"truncated bitstream: section {tag!r} needs {length} bytes, {max(body_end - pos, 0)} remain"
            )
        if tag in sections:
            raise BitstreamError(f"corrupt bitstream: section {tag!r} appears twice")
        sections[tag] = data[pos : pos + length]
        pos += length
    if pos != body_end:
        raise BitstreamError(f"corrupt bitstream: {body_end - pos} unexplained bytes after the sections")
    return Container(name.decode("ascii"), height, width, n, sections, limits, len(data))


def _check_sizes(
    height: int, width: int, n: int, limits: Limits, error: type[Exception] = ValueError
) -> None:
    if not (1 <= height <= limits.max_side and 1 <= width <= limits.max_side):
        raise error(f"image size {height}x{width} outside 1..{limits.max_side} per side")
    if height * width > limits.max_pixels:
        raise error(
            f"image size {height}x{width} = {height * width} pixels exceeds the limit of {limits.max_pixels} "
            "(limits.max_pixels)"
        )
    if n > min(limits.max_gaussians, limits.max_gaussians_per_pixel * height * width):
        raise error(f"{n} Gaussians for a {height}x{width} image exceeds the limit")
