"""The bitstream layer: container, symbol streams, LSQ+, residual VQ, and a fuzz test of the decoders."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from gsbench.codec import BitstreamError, Container, decode_bitstream, decode_container, encode_container
from gsbench.codec.quant import LsqPlusQuantiser, lsq_preview, read_lsq, write_lsq
from gsbench.codec.rvq import ResidualVQ
from gsbench.codec.streams import ByteReader, decode_symbols, encode_symbols, pack_uint, unpack_uint
from gsbench.gaussians import RenderOptions
from gsbench.methods import FitContext, get_method


def test_container_round_trip_is_byte_exact():
    c = Container("gi_pp", 512, 768, 5000, {"POSN": b"\x01\x02", "COLR": b"", "COVA": bytes(range(200))})
    data = encode_container(c)
    back = decode_container(data)
    assert (back.method, back.height, back.width, back.num_gaussians) == ("gi_pp", 512, 768, 5000)
    assert back.sections == c.sections and list(back.sections) == ["POSN", "COLR", "COVA"]
    assert encode_container(back) == data


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: b"JUNK" + d[4:], "magic"),
        (lambda d: d[:4] + b"\x09" + d[5:], "version"),
        (lambda d: d[:10], "truncated"),
        (lambda d: d[:-1], "CRC"),
        (lambda d: d[:20] + bytes([d[20] ^ 0xFF]) + d[21:], "CRC"),
    ],
)
def test_container_errors_say_what_is_wrong(mutate, message):
    data = encode_container(Container("gi", 16, 16, 3, {"POSN": b"abc"}))
    with pytest.raises(BitstreamError, match=message):
        decode_container(mutate(data))


def test_absurd_sizes_are_refused_before_allocation():
    import struct
    import zlib

    body = b"GSBF" + bytes([1, 2]) + b"gi" + struct.pack("<IIIB", 60000, 60000, 2**24, 0)
    with pytest.raises(BitstreamError, match="exceeds"):
        decode_container(body + struct.pack("<I", zlib.crc32(body)))
    body = b"GSBF" + bytes([1, 2]) + b"gi" + struct.pack("<IIIB", 8, 8, 1000, 0)
    with pytest.raises(BitstreamError, match="Gaussians"):
        decode_container(body + struct.pack("<I", zlib.crc32(body)))


@pytest.mark.parametrize("bits", [1, 3, 6, 10, 12, 16])
@pytest.mark.parametrize("entropy", [False, True])
def test_symbol_streams_round_trip(bits, entropy):
    rng = np.random.default_rng(bits)
    sym = np.clip(rng.normal(2 ** (bits - 1), 2 ** max(bits - 3, 0), 3000).round(), 0, 2**bits - 1).astype(
        int
    )
    data = encode_symbols(sym, bits, entropy)
    reader = ByteReader(data, "test")
    assert np.array_equal(decode_symbols(reader, bits, len(sym)), sym)
    reader.finish()
    assert len(data) <= 1 + (len(sym) * bits + 7) // 8  # entropy coding never costs more than raw
    np.testing.assert_array_equal(unpack_uint(pack_uint(sym, bits), bits, len(sym)), sym)


def test_entropy_coding_shrinks_skewed_symbols():
    sym = np.random.default_rng(0).geometric(0.5, 5000).clip(0, 63)
    assert len(encode_symbols(sym, 6, True)) < 0.5 * len(encode_symbols(sym, 6, False))


def test_lsq_plus_gradients():
    """Inside the range: d/dv = 1, d/dbeta = 0, d/ds = round(u) - u; clipped: d/dv = 0, d/dbeta = 1."""
    q = LsqPlusQuantiser(bits=3, channels=1)
    q.init_from(torch.tensor([[0.0], [7.0]]))  # step 1, offset 0
    v = torch.tensor([[2.3], [5.6], [9.0], [-2.0]], requires_grad=True)
    out = q(v)
    assert out.detach().flatten().tolist() == [2.0, 6.0, 7.0, 0.0]
    for i, (dv, ds, db) in enumerate([(1, 2 - 2.3, 0), (1, 6 - 5.6, 0), (0, 7, 1), (0, 0, 1)]):
        q.zero_grad()
        v.grad = None
        q(v)[i, 0].backward()
        assert v.grad[i, 0].item() == pytest.approx(dv)
        assert q.scale.grad.item() == pytest.approx(ds, abs=1e-6)
        assert q.offset.grad.item() == pytest.approx(db)


def test_lsq_write_read_matches_preview():
    values = torch.randn(500, 3) * torch.tensor([1.0, 5.0, 0.1])
    q = LsqPlusQuantiser(10, 3)
    q(values)  # initialises from the data
    for entropy in (False, True):
        reader = ByteReader(write_lsq(q, values, entropy), "test")
        decoded = read_lsq(reader, 500, 3, torch.device("cpu"))
        reader.finish()
        assert torch.equal(decoded, lsq_preview(q, values))
        assert (decoded - values).abs().max() <= q.stored()[0].max() / 2 + 1e-5


def test_residual_vq_beats_one_stage_and_commits():
    torch.manual_seed(0)
    x = torch.rand(2000, 3)
    one, two = ResidualVQ(stages=1, seed=0), ResidualVQ(stages=2, seed=0)
    e1 = ((one(x)[0] - x) ** 2).mean()
    xr = x.clone().requires_grad_(True)
    x_hat, idx, commit = two(xr)
    assert ((x_hat - x) ** 2).mean() < e1
    assert idx.shape == (2000, 2) and int(idx.max()) < 8
    commit.backward()
    assert xr.grad.abs().sum() > 0  # the commitment term reaches the input
    two.eval()
    assert torch.allclose(two.decode(two(x)[1]), two(x)[0])


@pytest.fixture(scope="module")
def tiny_files():
    """One small real file per Gaussian codec (fit for a handful of iterations)."""
    torch.manual_seed(0)
    image = torch.rand(3, 24, 32)
    ctx = FitContext(progress=False, log_every=0, render=RenderOptions())
    gi = get_method("gi", {"lr": 1e-2}, {"iterations": 5}, {"qat_iterations": 5, "entropy": True})
    gipp = get_method("gi_pp", {"grow_every": 3}, {"iterations": 8}, {"warmup": 4, "entropy": True})
    return {"gi": gi.compress(image, 60, ctx), "gi_pp": gipp.compress(image, 60, ctx)}


@pytest.mark.parametrize("name", ["gi", "gi_pp"])
def test_decoded_render_equals_quantised_model_and_reencodes(name, tiny_files):
    enc = tiny_files[name]
    decoded = decode_bitstream(enc.data)
    assert torch.equal(decoded.render(), enc.preview())
    assert decoded.num_gaussians == enc.num_gaussians
    container = decode_container(enc.data)
    assert encode_container(container) == enc.data


@pytest.mark.parametrize("name", ["gi", "gi_pp"])
def test_fuzzed_files_fail_cleanly_and_fast(name, tiny_files):
    """Random truncations, byte flips and insertions: a BitstreamError (or a valid decode) within a
    second, never another exception, a hang or a huge allocation; with and without the CRC check."""
    data = tiny_files[name].data
    rng = np.random.default_rng(7)
    outcomes, slowest = {"error": 0, "decoded": 0}, 0.0
    for case in range(300):
        buf = bytearray(data)
        kind = case % 3
        if kind == 0:
            buf = buf[: rng.integers(0, len(buf))]
        elif kind == 1:
            for _ in range(rng.integers(1, 4)):
                buf[rng.integers(0, len(buf))] ^= 1 << rng.integers(0, 8)
        else:
            at = rng.integers(0, len(buf))
            buf[at:at] = rng.integers(0, 256, rng.integers(1, 6)).astype(np.uint8).tobytes()
        start = time.perf_counter()
        try:
            decode_bitstream(bytes(buf), verify_crc=bool(case % 2)).render()
            outcomes["decoded"] += 1
        except BitstreamError:
            outcomes["error"] += 1
        slowest = max(slowest, time.perf_counter() - start)
    # No timing assertion (CI speed varies): the figure is printed; a hang would stall the suite.
    print(f"{name}: {outcomes}, slowest case {slowest * 1000:.1f} ms")
    assert outcomes["error"] > 150
