"""SGI: structured 2D Gaussians for large images (CVPR 2026), method ``sgi``.

Modules: :mod:`.config` (the checked options), :mod:`.hashgrid` (binary hash grid, straight-through
binarisation), :mod:`.context` (context model, quantisation steps, bit estimates), :mod:`.model` (seeds,
decoding MLPs, Gaussian pyramid), :mod:`.train` (multi-scale schedule and loop), :mod:`.positions`
(Morton-delta seed coding), :mod:`.codec` (bitstream layout and decoder), :mod:`.encode` (encoder) and
:mod:`.method` (registers ``sgi``). docs/methods.md (section ``sgi``) lists every choice and departure.
"""

from . import codec, method  # noqa: F401  (registers the "sgi" method and its decoder)
from .method import SGI, SGIFitted

__all__ = ["SGI", "SGIFitted"]
