"""Methods registered by name; importing this package registers all of them."""

from . import gaussianimage  # noqa: F401  (registers "gi")
from . import instant_gi  # noqa: F401
from . import gaussianimage_pp, gi_codec, gipp_codec  # noqa: F401  (registers "gi_pp" and the decoders)
from .base import METHODS, Decoded, Encoded, FitContext, FitDiverged, Fitted, Method, get_method

__all__ = ["METHODS", "Decoded", "Encoded", "FitContext", "FitDiverged", "Fitted", "Method", "get_method"]
