"""Hostile-file fuzzing of every decoder: seed files from tiny fits, seeded mutations, one verdict each.

A mutant passes when decoding it either raises :class:`BitstreamError` or gives a finite ``[C, H, W]``
image of the size the file declares, within :data:`MAX_SECONDS`. Anything else (another exception, a
panic, NaN pixels, a wrong shape, a slow decode) is a *defect*. Run as a script to fuzz at length and
keep reproducers::

    python tests/fuzzing.py --mutants 1000 --save tests/data/fuzz
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gsbench.codec import BitstreamError, decode_bitstream, decode_container
from gsbench.gaussians.render import RenderOptions
from gsbench.methods import FitContext, get_method

MAX_SECONDS = 5.0  # per mutant; tiny seeds decode in milliseconds, so this only catches blow-ups
QUIET = FitContext(progress=False, log_every=0, render=RenderOptions())
EXTREME_U32 = (0, 1, 2, 255, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF)
EXTREME_F32 = (float("nan"), float("inf"), -float("inf"), 3.4e38, -3.4e38, 1e-45, 0.0, -1.0, 1e20)
EXTREME_F16 = (float("nan"), float("inf"), -float("inf"), 65504.0, -65504.0, 6e-8, 0.0)


def _image(height: int = 24, width: int = 32) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(6 * xx + 4 * yy)]).clamp(0, 1)


def seed_files() -> dict[str, bytes]:
    """One real file per codec from a tiny fit (a few iterations, a few dozen Gaussians): ~10 s in all."""
    torch.manual_seed(0)
    img = _image()
    out = {}
    gi = get_method("gi", {"lr": 1e-2}, {"iterations": 5}, {"qat_iterations": 5, "entropy": True})
    out["gi"] = gi.compress(img, 40, QUIET).data
    gipp = get_method("gi_pp", {"grow_every": 3}, {"iterations": 8}, {"warmup": 4, "entropy": True})
    out["gi_pp"] = gipp.compress(img, 40, QUIET).data
    flat = {"progressive": False}
    igs = get_method("image_gs", flat, {"iterations": 4}, {"bits": 8, "entropy": True})
    out["image_gs"] = igs.compress(img, 24, QUIET).data
    igs_raw = get_method("image_gs", flat, {"iterations": 4}, {"bits": 16, "entropy": False})
    out["image_gs_raw"] = igs_raw.compress(img, 16, QUIET).data
    coin = get_method("coin", {"name": "coin", "hidden": 8, "layers": 2}, {"iterations": 5})
    out["coin"] = coin.compress(img, 0, QUIET).data
    out["sgi"] = _sgi_seed()
    for name in ("jpeg", "webp"):
        method = get_method(name, {"name": name, "quality": 50}, {})
        out[name] = method.compress(img, 50, QUIET).data
    return out


def _sgi_seed() -> bytes:
    cfg = {"name": "sgi", "rate_start": 0.5, "levels": 1, "feature_dim": 8, "gaussians_per_seed": 4}
    cfg["hash"] = {"scale": "auto", "resolutions": [4, 8], "table_log2": 6, "features": 2}
    method = get_method("sgi", cfg, {"iterations": 6})
    return method.compress(_image(32, 48), 80, QUIET).data


# ---- mutations ----------------------------------------------------------------------------------------


def _sections(data: bytes) -> list[tuple[int, int]]:
    """``(start, length)`` of each section, from the (unmutated) container layout."""
    name_len = data[5]
    count = data[18 + name_len]
    pos, table = 19 + name_len + 8 * count, []
    for i in range(count):
        (length,) = struct.unpack_from("<I", data, 19 + name_len + 8 * i + 4)
        table.append((pos, length))
        pos += length
    return table


def _header_fields(data: bytes) -> list[tuple[int, str]]:
    """Offsets and struct formats of the integer header fields (H, W, N, count, section lengths)."""
    name_len = data[5]
    base = 6 + name_len
    fields = [(4, "B"), (5, "B"), (base, "I"), (base + 4, "I"), (base + 8, "I"), (base + 12, "B")]
    count = data[base + 12]
    fields += [(base + 13 + 8 * i + 4, "I") for i in range(count)]
    return fields


def mutate(data: bytes, rng: np.random.Generator, pixel_codec: bool = False) -> tuple[bytes, str]:
    """One random mutation of ``data``: ``(mutant, description)``."""
    buf = bytearray(data)
    kinds = ["flip", "truncate", "insert", "delete"]
    if not pixel_codec:
        kinds += ["header", "header", "grow", "section_f32", "section_f16", "section_int", "section_int"]
        kinds += ["dup16"]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "flip":
        for _ in range(int(rng.integers(1, 5))):
            buf[int(rng.integers(len(buf)))] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        buf = buf[: int(rng.integers(0, len(buf)))]
    elif kind == "insert":
        at = int(rng.integers(len(buf) + 1))
        buf[at:at] = rng.integers(0, 256, int(rng.integers(1, 9))).astype(np.uint8).tobytes()
    elif kind == "delete":
        at = int(rng.integers(len(buf)))
        del buf[at : at + int(rng.integers(1, 9))]
    elif kind == "header":
        at, fmt = _header_fields(data)[int(rng.integers(len(_header_fields(data))))]
        top = 0xFF if fmt == "B" else 0xFFFFFFFF
        values = [v for v in EXTREME_U32 if v <= top] + [int(rng.integers(0, top + 1))]
        struct.pack_into("<" + fmt, buf, at, values[int(rng.integers(len(values)))])
    elif kind == "grow":  # the same primitives over a much larger declared image
        base = 6 + data[5]
        h, w = struct.unpack_from("<II", data, base)
        k = int(rng.choice([4, 16, 64, 256, 2048]))
        struct.pack_into("<II", buf, base, min(h * k, 0xFFFFFFFF), min(w * k, 0xFFFFFFFF))
    elif kind == "dup16":  # copy a 16-bit value onto its neighbour: equal bounds such as lo == hi
        start, length = _sections(data)[int(rng.integers(len(_sections(data))))]
        if length >= 4:
            at = start + 2 + int(rng.integers(0, length - 3))
            buf[at : at + 2] = buf[at - 2 : at]
    else:
        start, length = _sections(data)[int(rng.integers(len(_sections(data))))]
        fmt, pool = {
            "section_f32": ("<f", EXTREME_F32),
            "section_f16": ("<e", EXTREME_F16),
            "section_int": ("<I", EXTREME_U32),
        }[kind]
        size = struct.calcsize(fmt)
        for _ in range(int(rng.integers(1, 4))):
            if length >= size:
                at = start + int(rng.integers(0, length - size + 1))
                value = pool[int(rng.integers(len(pool)))]
                if fmt == "<I" and rng.random() < 0.5:
                    fmt_small, value = "<H", int(value) & 0xFFFF
                    struct.pack_into(fmt_small, buf, at, value)
                else:
                    struct.pack_into(fmt, buf, at, value)
    return bytes(buf), kind


def with_crc(data: bytes) -> bytes:
    """``data`` with its last four bytes replaced by the CRC-32 of the rest (what an attacker does)."""
    if len(data) < 4:
        return data
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


# ---- verdicts -----------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What decoding one file did: ``ok`` (finite image of the declared size), ``error`` or ``defect``."""

    outcome: str
    detail: str
    seconds: float


def pixel_decoder(name: str) -> Callable[[bytes], torch.Tensor]:
    method = get_method(name, {"name": name, "quality": 50}, {})
    return lambda data: method.decode(data, QUIET).render()


def judge(data: bytes, name: str) -> Verdict:
    """Decode ``data`` (a gsbench file, or a ``jpeg``/``webp`` file for those names) and classify it."""
    start = time.perf_counter()
    try:
        if name in ("jpeg", "webp"):
            out, shape = pixel_decoder(name)(data), None
        else:
            decoded = decode_bitstream(data)
            out = decoded.render()
            c = decode_container(data)
            shape = (c.height, c.width)
    except BitstreamError as exc:
        return Verdict("error", str(exc), time.perf_counter() - start)
    except Exception as exc:  # pixel codecs: the libraries' own errors are their clean failure
        seconds = time.perf_counter() - start
        if name in ("jpeg", "webp") and not isinstance(exc, MemoryError):
            return Verdict("error", f"{type(exc).__name__}: {exc}", seconds)
        return Verdict("defect", f"{type(exc).__name__}: {exc}", seconds)
    except BaseException as exc:  # a Rust panic, for one; Ctrl-C still stops the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Verdict("defect", f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    seconds = time.perf_counter() - start
    if out.ndim != 3 or (shape is not None and tuple(out.shape[1:]) != shape):
        return Verdict("defect", f"decoded shape {tuple(out.shape)}, declared {shape}", seconds)
    if not bool(torch.isfinite(out).all()):
        return Verdict("defect", "non-finite pixels", seconds)
    if seconds > MAX_SECONDS:
        return Verdict("defect", f"decode took {seconds:.1f} s", seconds)
    return Verdict("ok", "", seconds)


def fuzz(name: str, data: bytes, mutants: int, seed: int) -> tuple[dict[str, int], list, float]:
    """``mutants`` mutants of ``data``, half with the CRC recomputed: counts, defects, slowest seconds."""
    codec = name.split("_raw")[0]
    rng = np.random.default_rng(seed)
    counts = {"ok": 0, "error": 0, "defect": 0}
    defects, slowest = [], 0.0
    for i in range(mutants):
        mutant, kind = mutate(data, rng, pixel_codec=codec in ("jpeg", "webp"))
        if i % 2 and codec not in ("jpeg", "webp"):
            mutant = with_crc(mutant)
        verdict = judge(mutant, codec)
        counts[verdict.outcome] += 1
        slowest = max(slowest, verdict.seconds)
        if verdict.outcome == "defect":
            defects.append((i, kind, verdict.detail, mutant))
    return counts, defects, slowest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--codecs", nargs="*", default=None)
    parser.add_argument("--save", type=Path, default=None, help="write each defect's file here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = seed_files()
    total = 0
    for name, data in seeds.items():
        if args.codecs and name not in args.codecs:
            continue
        counts, defects, slowest = fuzz(name, data, args.mutants, args.seed)
        total += len(defects)
        print(f"{name}: {counts}, slowest {slowest * 1000:.0f} ms", flush=True)
        for i, kind, detail, mutant in defects:
            print(f"  defect #{i} ({kind}): {detail[:160]}", flush=True)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                codec = name.split("_raw")[0]
                (args.save / f"{name}_{args.seed}_{i}.{codec}.bin").write_bytes(mutant)
    print(f"defects: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
