"""GaussianImage (ECCV 2024), method ``gi``.

Modules: :mod:`.model` (the Gaussians' parameters), :mod:`.method` (the fit; registers ``gi``) and
:mod:`.codec` (quantisation-aware fine-tuning, the bitstream and its decoder, registered as ``gi``).
docs/methods.md (section ``gi``) lists every choice.
"""

from . import codec, method  # noqa: F401  (registers the "gi" method and its decoder)
from .method import GaussianImage, GaussianImageFitted
from .model import GaussianImageModel

__all__ = ["GaussianImage", "GaussianImageFitted", "GaussianImageModel"]
