"""Instant GaussianImage (``instant_gi``): a network proposes the Gaussians, then a short fine-tune.

Modules: :mod:`.points` (pooling, dithering, Delaunay, ellipses), :mod:`.network` (ConvNeXt-UNet and MLP
fields), :mod:`.finetune` (GaussianImage-rs fine-tuning with wall-clock checkpoints), :mod:`.quadtree`
(pseudo-targets), :mod:`.train` (training the network), :mod:`.checkpoint`, :mod:`.plot`
(time-to-quality figure) and :mod:`.method` (registers ``instant_gi``).
"""

from . import method  # noqa: F401  (registers "instant_gi")
from .checkpoint import load_checkpoint, save_checkpoint
from .network import InitNet, NetConfig

__all__ = ["InitNet", "NetConfig", "load_checkpoint", "save_checkpoint"]
