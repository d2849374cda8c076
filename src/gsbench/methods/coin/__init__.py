"""COIN (Dupont et al., 2021), method ``coin``: an image stored as the float16 weights of a SIREN.

Modules: :mod:`.model` (the SIREN), :mod:`.method` (the fit; registers ``coin``) and :mod:`.codec` (the
bitstream and its decoder, registered as ``coin``). docs/baselines.md lists every choice.
"""

from . import codec, method  # noqa: F401  (registers the "coin" method and its decoder)
from .codec import decode_coin, pack
from .method import Coin
from .model import Siren, num_params

__all__ = ["Coin", "Siren", "decode_coin", "num_params", "pack"]
