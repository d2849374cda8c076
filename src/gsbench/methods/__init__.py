"""Methods registered by name; importing this package registers all of them (and their decoders).

``decode_bitstream`` is re-exported here because importing this package is what fills the decoder
registry that :func:`gsbench.codec.decode_bitstream` dispatches through (the codec never imports methods).
"""

from ..codec import decode_bitstream
from . import (  # noqa: F401
    codecs,
    coin,
    gaussianimage,
    gaussianimage_pp,
    gi_codec,
    gipp_codec,
    image_gs,
    instant_gi,
    sgi,
)
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
