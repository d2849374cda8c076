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

# A decoder takes the container, the device and the render options (None: the renderer's defaults) and
# returns a ``gsbench.methods.base.Representation`` (render(), height, width, num_gaussians, num_params);
# typed loosely because this layer sits below the methods and the renderer and cannot name either.
Decoder = Callable[[Container, torch.device, Any], Any]
DECODERS: Registry[Decoder] = Registry("bitstream decoder")


def decode_bitstream(
    data: bytes,
    device: torch.device | str = "cpu",
    options: Any = None,
    verify_crc: bool = True,
    limits: Limits | None = None,
):
    """Decode a gsbench bitstream with the decoder of the method named in the file.

    Args:
        data: the file's bytes. device: where the Gaussians go. options: how to render them (a
            ``gsbench.gaussians.RenderOptions``; None: each decoder renders with the defaults).
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
    return DECODERS.get(container.method)(container, torch.device(device), options)


__all__ = [
    "DECODERS",
    "BitstreamError",
    "Container",
    "Limits",
    "check_output",
    "check_render_budget",
    "current_limits",
    "decode_bitstream",
    "decode_container",
    "encode_container",
    "set_limits",
]
