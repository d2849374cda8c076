"""Image-GS (SIGGRAPH 2025), method ``image_gs``.

Modules: :mod:`.config` (the checked options), :mod:`.model` (Gaussians, initialisation, error-guided
addition), :mod:`.schedule` (addition and learning-rate schedules), :mod:`.method` (the fit; registers
``image_gs``) and :mod:`.codec` (attribute format, rendering modes, bitstream and decoder).
docs/methods_image_gs.md lists every choice.
"""

from . import codec, method  # noqa: F401  (registers the "image_gs" method and its decoder)
from .config import ImageGSConfig
from .method import ImageGS, ImageGSFitted

__all__ = ["ImageGS", "ImageGSConfig", "ImageGSFitted"]
