"""Instant GaussianImage (``instant_gi``): a network proposes the Gaussians, then a short fine-tune.

Modules: :mod:`.config` (the checked options), :mod:`.model` (the network: ConvNeXt-UNet and MLP fields;
the Gaussians it proposes are ``gi``'s model), :mod:`.points` (pooling, dithering, Delaunay, ellipses),
:mod:`.finetune` (GaussianImage-rs fine-tuning with wall-clock checkpoints), :mod:`.quadtree`
(pseudo-targets), :mod:`.train` (training the network), :mod:`.checkpoint`, :mod:`.plot`
(time-to-quality figure) and :mod:`.method` (registers ``instant_gi``). No ``codec``: the method has no
compress task.
"""

from . import method  # noqa: F401  (registers "instant_gi")
from .checkpoint import load_checkpoint, save_checkpoint
from .model import InitNet, NetConfig

__all__ = ["InitNet", "NetConfig", "load_checkpoint", "save_checkpoint"]
