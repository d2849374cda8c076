"""Hostile files: every decoder gives a finite image of the declared size or a BitstreamError, fast.

Seed files come from tiny fits of every codec that writes a file (gi, gi_pp, image_gs with and without
entropy coding, coin, sgi, and the JPEG and WebP baselines); :mod:`fuzzing` mutates them (bit flips,
truncations, insertions, deletions, header fields set to extremes, declared sizes grown, section bytes
overwritten with NaN/Inf/huge values, 16-bit values copied onto their neighbours), half of the mutants
with the CRC recomputed as an attacker would. ``tests/data/fuzz`` keeps a reproducer of every defect
found so far (each crashed, hung, exhausted memory or returned NaN before the decoders were hardened).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fuzzing import fuzz, judge, seed_files
from gsbench.codec import BitstreamError, Limits, decode_bitstream
from gsbench.codec.streams import ByteReader, decode_symbols, encode_symbols

REGRESSIONS = Path(__file__).parent / "data" / "fuzz"
FAST_MUTANTS = 250


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny decodes: one thread is faster on a shared machine
    yield seed_files()
    torch.set_num_threads(threads)


CODECS = ["gi", "gi_pp", "image_gs", "image_gs_raw", "coin", "sgi", "jpeg", "webp"]


@pytest.mark.parametrize("name", CODECS)
def test_seed_file_decodes(name, seeds):
    assert judge(seeds[name], name.split("_raw")[0]).outcome == "ok"


@pytest.mark.parametrize("name", CODECS)
def test_mutants_fail_cleanly(name, seeds):
    counts, defects, slowest = fuzz(name, seeds[name], FAST_MUTANTS, seed=2026)
    print(f"{name}: {counts}, slowest {slowest * 1000:.0f} ms")
    assert not defects, [(i, kind, detail) for i, kind, detail, _ in defects]
    assert counts["error"] > FAST_MUTANTS // 4  # the mutations do reach the parsers


@pytest.mark.slow
@pytest.mark.parametrize("name", CODECS)
def test_mutants_fail_cleanly_long(name, seeds):
    counts, defects, slowest = fuzz(name, seeds[name], 1000, seed=15)
    print(f"{name}: {counts}, slowest {slowest * 1000:.0f} ms")
    assert not defects, [(i, kind, detail) for i, kind, detail, _ in defects]


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*.bin")), ids=lambda p: p.stem)
def test_regression_files(path):
    """Each of these once crashed, panicked, ran for seconds to minutes or decoded to NaN."""
    codec = path.name.split(".")[-2]
    verdict = judge(path.read_bytes(), codec)
    assert verdict.outcome != "defect", verdict.detail
    if not path.name.startswith("image_gs_huge_scales"):  # that one is valid, just expensive
        assert verdict.outcome == "error", "a hostile file must be refused"


def test_constriction_panic_is_a_bitstream_error():
    """A Gaussian stream with lo == hi made constriction panic (a BaseException): refused up front."""
    data = bytes([2]) + struct.pack("<HHffI", 5, 5, 5.0, 1.0, 1) + struct.pack("<I", 12345)
    with pytest.raises(BitstreamError, match=r"symbol range 5\.\.5"):
        decode_symbols(ByteReader(data, "test stream"), 12, 4)


def test_constant_symbols_encode_raw_with_entropy_on():
    """One distinct symbol has no ANS model: the encoder writes it raw instead of failing."""
    data = encode_symbols(np.full(50, 3), 4, entropy=True)
    assert data[0] == 0
    assert decode_symbols(ByteReader(data, "s"), 4, 50).tolist() == [3] * 50


def test_declared_size_is_checked_against_the_payload_and_the_limit(seeds):
    data = seeds["gi_pp"]
    base = 6 + data[5]
    big = bytearray(data)
    struct.pack_into("<II", big, base, 8192, 16384)
    with pytest.raises(BitstreamError, match="cannot describe a 8192x16384 image"):
        decode_bitstream(bytes(big), verify_crc=False)
    with pytest.raises(BitstreamError, match=r"exceeds the limit of 100 \(limits.max_pixels\)"):
        decode_bitstream(data, limits=Limits(max_pixels=100))


def test_render_work_is_bounded_before_rendering(seeds):
    """Every Gaussian blown up to cover the image: refused from the estimate, not after minutes."""
    with pytest.raises(BitstreamError, match="Gaussian-pixel evaluations"):
        tight = Limits(max_evals_per_pixel=1, max_evals_per_bit=1, min_eval_budget=1)
        decode_bitstream(seeds["gi_pp"], limits=tight)


@pytest.mark.parametrize(("count", "outliers"), [(100_000, 1), (100_000, 10), (1_000_000, 3)])
def test_extremely_skewed_streams_still_decode(count, outliers):
    """A few ANS words may legitimately carry a million symbols: no symbols-per-byte limit refuses them."""
    sym = np.zeros(count, dtype=np.int64)
    sym[:outliers] = 1
    data = encode_symbols(sym, 3, entropy=True)
    assert data[0] in (1, 2) and len(data) < 40
    assert np.array_equal(decode_symbols(ByteReader(data, "s"), 3, count), sym)
