"""Methods registered by name; importing this package registers all of them (and their decoders).

``decode_bitstream`` is re-exported here because importing this package is what fills the decoder
registry that :func:`gsbench.codec.decode_bitstream` dispatches through (the codec never imports methods).
"""

from ..codec import decode_bitstream
from . import baselines, coin, gi, gi_pp, image_gs, instant_gi, sgi  # noqa: F401
from .base import (
    METHODS,
    Decoded,
    Encoded,
    FitContext,
    FitDiverged,
    Fitted,
    Method,
    Representation,
    get_method,
    methods_for_task,
)

__all__ = [
    "METHODS",
    "Decoded",
    "Encoded",
    "FitContext",
    "FitDiverged",
    "Fitted",
    "Method",
    "Representation",
    "decode_bitstream",
    "get_method",
    "methods_for_task",
]
