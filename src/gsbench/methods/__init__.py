"""Methods registered by name; importing this package registers all of them (and their decoders)."""

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
from .base import METHODS, Decoded, Encoded, FitContext, FitDiverged, Fitted, Method, get_method

__all__ = ["METHODS", "Decoded", "Encoded", "FitContext", "FitDiverged", "Fitted", "Method", "get_method"]
