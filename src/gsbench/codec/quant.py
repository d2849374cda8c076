"""Quantisers for quantisation-aware training, and their serialisation.

:class:`LsqPlusQuantiser` is LSQ+ (Bhalgat et al., 2020) per channel: a learned step ``s`` and offset
``beta``; ``q = clip(round((v - beta) / s), 0, 2^b - 1)``, ``v_hat = q s + beta``, with a straight-through
estimator for the rounding. Autograd then gives exactly LSQ+'s gradients: ``dv_hat/dv = 1`` inside the
range and 0 outside; ``dv_hat/ds = round(u) - u`` inside (``u = (v - beta)/s``) and ``0`` or ``2^b - 1``
at the clips; ``dv_hat/dbeta = 0`` inside and 1 at the clips. The optional LSQ gradient scale
``1 / sqrt(numel * (2^b - 1))`` is off by default, as in the public GaussianImage code (which computes it
and then overwrites it).

The paper writes ``floor``; with a straight-through estimator ``round`` is the unbiased choice and what
the public code uses.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .streams import ByteReader, decode_symbols, encode_symbols


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def fp16_ste(x: torch.Tensor) -> torch.Tensor:
    """Cast through float16 forward, identity backward (GaussianImage's position quantiser)."""
    return x + (x.half().to(x.dtype) - x).detach()


class LsqPlusQuantiser(nn.Module):
    """Per-channel learned uniform quantiser with ``bits`` bits.

    Args:
        bits: bits per value (1..16).
        channels: the last dimension of the inputs; each channel has its own step and offset.
        grad_scale: apply LSQ's gradient scaling to ``s`` and ``beta``.
    """

    def __init__(self, bits: int, channels: int, grad_scale: bool = False) -> None:
        super().__init__()
        if not 1 <= bits <= 16:
            raise ValueError(f"bits must be in 1..16, got {bits}")
        self.bits, self.channels, self.grad_scale = bits, channels, grad_scale
        self.qmax = (1 << bits) - 1
        self.scale = nn.Parameter(torch.ones(channels))
        self.offset = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialised", torch.tensor(False))

    @torch.no_grad()
    def init_from(self, values: torch.Tensor) -> None:
        """Set the range to the data's per-channel min/max (``values`` ``[N, channels]``)."""
        lo, hi = values.amin(0), values.amax(0)
        self.scale.copy_(((hi - lo) / self.qmax).clamp_min(1e-8))
        self.offset.copy_(lo)
        self.initialised.fill_(True)

    def _params(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, b = self.scale, self.offset
        if self.grad_scale:
            g = 1.0 / float(np.sqrt(max(n, 1) * self.qmax))
            s = s * g + (s - s * g).detach()  # value s, gradient scaled by g
            b = b * g + (b - b * g).detach()
        return s.abs().clamp_min(1e-8), b

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """Fake-quantise ``values`` ``[N, channels]`` (differentiable; initialises on first use)."""
        if not bool(self.initialised):
            self.init_from(values.detach())
        s, b = self._params(values.shape[0])
        u = torch.clamp((values - b) / s, 0, self.qmax)
        return ste_round(u) * s + b

    @torch.no_grad()
    def symbols(self, values: torch.Tensor) -> torch.Tensor:
        """Integer codes ``[N, channels]`` in ``[0, 2^bits)`` (int64)."""
        if not bool(self.initialised):
            self.init_from(values)
        s, b = self.stored()
        return torch.clamp(torch.round((values - b) / s), 0, self.qmax).long()

    @torch.no_grad()
    def stored(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Step and offset as the file stores them (float32), on the parameters' device."""
        s = self.scale.detach().abs().clamp_min(1e-8).float()
        return s, self.offset.detach().float()

    def to_bytes(self) -> bytes:
        """``channels`` float32 steps, then ``channels`` float32 offsets."""
        s, b = self.stored()
        return np.concatenate([s.cpu().numpy(), b.cpu().numpy()]).astype("<f4").tobytes()


def dequantise(symbols: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``symbols * scale + offset`` in float32: the one formula encoder preview and decoder share."""
    return symbols.float() * scale.float() + offset.float()


def write_lsq(q: LsqPlusQuantiser, values: torch.Tensor, entropy: bool) -> bytes:
    """A quantised attribute: ``bits u8, channels u8``, f32 steps and offsets, a symbol stream per channel.

    Args:
        q: the trained quantiser. values: ``[N, channels]`` real values to code.
    """
    sym = q.symbols(values).cpu().numpy()
    head = bytes([q.bits, q.channels]) + q.to_bytes()
    return head + b"".join(encode_symbols(sym[:, c], q.bits, entropy) for c in range(q.channels))


def lsq_preview(q: LsqPlusQuantiser, values: torch.Tensor) -> torch.Tensor:
    """What the decoder of :func:`write_lsq` reconstructs, computed in the encoder: ``[N, channels]``."""
    s, b = q.stored()
    return dequantise(q.symbols(values), s, b)


def read_lsq(reader: ByteReader, count: int, channels: int, device: torch.device) -> torch.Tensor:
    """Read :func:`write_lsq`'s bytes: dequantised values ``[count, channels]`` (float32, on ``device``)."""
    bits, got = reader.unpack("BB")
    if got != channels or not 1 <= bits <= 16:
        raise_corrupt(reader, f"quantiser has {got} channels of {bits} bits, expected {channels} channels")
    scale, offset = read_quantiser(reader, channels)
    sym = np.stack([decode_symbols(reader, bits, count) for _ in range(channels)], axis=1)
    values = dequantise(torch.from_numpy(sym).to(device), scale.to(device), offset.to(device))
    if values.numel() and not bool(torch.isfinite(values).all()):  # a huge step overflows float32
        raise_corrupt(reader, "dequantised values overflow float32")
    return values


def read_quantiser(reader: ByteReader, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read what :meth:`LsqPlusQuantiser.to_bytes` wrote: (scale ``[C]``, offset ``[C]``), validated."""
    arr = reader.array("<f4", 2 * channels)
    if not np.all(np.isfinite(arr)) or np.any(arr[:channels] <= 0):
        raise_corrupt(reader, "quantiser step or offset is not finite and positive")
    return torch.from_numpy(arr[:channels]), torch.from_numpy(arr[channels:])


def raise_corrupt(reader: ByteReader, why: str) -> None:
    from .container import BitstreamError

    raise BitstreamError(f"corrupt {reader.what}: {why}")
