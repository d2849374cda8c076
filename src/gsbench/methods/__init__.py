"""Methods registered by name; importing this package registers all of them."""

from . import gaussianimage  # noqa: F401  (registers "gi")
from .base import METHODS, FitContext, FitDiverged, Fitted, Method, get_method

__all__ = ["METHODS", "FitContext", "FitDiverged", "Fitted", "Method", "get_method"]
