"""GaussianImage++ (AAAI 2026), method ``gi_pp``.

Modules: :mod:`.model` (Gaussians, filter, radius clip, row edits), :mod:`.train` (D3 growth, pruning,
snapshot), :mod:`.method` (the fit; registers ``gi_pp``), :mod:`.fit_cache` (reused fits) and :mod:`.codec`
(warm-up, QAT, the bitstream and its decoder, registered as ``gi_pp``). docs/methods.md lists every choice.
"""

from . import codec, method  # noqa: F401  (registers the "gi_pp" method and its decoder)
from .method import GaussianImagePP, GaussianImagePPFitted
from .model import GaussianImagePPModel

__all__ = ["GaussianImagePP", "GaussianImagePPFitted", "GaussianImagePPModel"]
