"""Bitstreams: the container, symbol streams, quantisers, and the decoders registered per method.

Every Gaussian method's codec registers a decoder under its method name in :data:`DECODERS`;
:func:`decode_bitstream` reads the name from the file itself, so decoding needs nothing but the bytes.
This package never imports the methods (they import it): importing :mod:`gsbench.methods` is what
fills :data:`DECODERS`, and ``gsbench.methods.decode_bitstream`` is this function with that done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..gaussians.render import RenderOptions, render
from ..registry import Registry
from .container import (
    BitstreamError,
    Container,
    Limits,
    current_limits,
    decode_container,
    encode_container,
    set_limits,
)
from .guard import check_output, check_render_budget

# A decoder returns a ``gsbench.methods.base.Representation`` (render(), height, width, num_gaussians,
# num_params); typed loosely because this layer sits below the methods and cannot name their interface.
Decoder = Callable[[Container, torch.device, RenderOptions], Any]
DECODERS: Registry[Decoder] = Registry("bitstream decoder")


class DecodedGaussians:
    """Gaussians rebuilt from a file, rendered by accumulated summation.

    Attributes:
        means: ``[N, 2]`` pixels; cov: ``[N, 3]`` packed covariances; colors: ``[N, C]``.
    """

    def __init__(
        self,
        means,
        cov,
        colors,
        height: int,
        width: int,
        options: RenderOptions,
        limits: Limits | None = None,
        what: str = "bitstream",
        file_bytes: int = 0,
    ) -> None:
        # checked here, before any render: finite values, bounded colours, bounded work and memory
        limits = limits or current_limits()
        check_render_budget(what, means, cov, colors, height, width, limits, file_bytes)
        self.means, self.cov, self.colors = means, cov, colors
        self.height, self.width, self.options, self.what = height, width, options, what
        self.num_gaussians = int(means.shape[0])

    @property
    def num_params(self) -> int:
        """Decoded scalars the renderer reads: means, packed covariances and colours."""
        return int(self.means.numel() + self.cov.numel() + self.colors.numel())

    @torch.no_grad()
    def render(self) -> torch.Tensor:
        """``[C, H, W]`` decoded image (raw); BitstreamError if it is not finite."""
        out = render(self.means, self.cov, self.colors, self.height, self.width, self.options)
        return check_output(self.what, out)


def decode_bitstream(
    data: bytes,
    device: torch.device | str = "cpu",
    options: RenderOptions | None = None,
    verify_crc: bool = True,
    limits: Limits | None = None,
):
    """Decode a gsbench bitstream with the decoder of the method named in the file.

    Args:
        data: the file's bytes. device: where the Gaussians go. options: how to render them.
        verify_crc: check the CRC-32 first (the fuzz tests turn it off to exercise every parser).
        limits: what the decoder accepts (default: :func:`current_limits`).
    Returns:
        A representation: ``render() -> [C, H, W]``, ``height``, ``width``, ``num_gaussians``, ``num_params``.

    Raises:
        BitstreamError: for a malformed file or a method this gsbench cannot decode.
    """
    container = decode_container(data, limits=limits, verify_crc=verify_crc)
    if container.method not in DECODERS:
        known = ", ".join(DECODERS.names()) or "none registered (import gsbench.methods first)"
        raise BitstreamError(f"no decoder for method {container.method!r}; known: {known}")
    return DECODERS.get(container.method)(container, torch.device(device), options or RenderOptions())


__all__ = [
    "DECODERS",
    "BitstreamError",
    "Container",
    "DecodedGaussians",
    "Limits",
    "current_limits",
    "decode_bitstream",
    "decode_container",
    "encode_container",
    "set_limits",
]
