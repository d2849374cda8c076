"""A dataset item loaded for a job: the target tensor, its channel groups, and how to score and save it.

A dataset yields :class:`~gsbench.data.ImageItem` (a name and a path); :func:`load_item` reads one into a
:class:`LoadedItem`. A plain image is one RGB group-less tensor; a texture stack (a directory, see
:mod:`gsbench.data.stacks`) is several files concatenated along channels, with one
:class:`~gsbench.data.stacks.ChannelGroup` per file. The job treats both alike: it fits the tensor,
then asks the item to score and save the reconstruction, which does the right thing for each kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..metrics import compute_metrics_with_notes
from .images import MAX_PIXELS, load_image
from .registry import ImageItem
from .stacks import ChannelGroup, is_stack, load_stack, save_stack_pngs, stack_info, stack_metrics


@dataclass(frozen=True)
class LoadedItem:
    """One loaded dataset item.

    Attributes:
        name: the item's name (file stem, or the stack's directory name).
        image: the target, ``[C, H, W]`` float32 in [0, 1] (``C = 3`` for a plain image).
        groups: the channel groups of a texture stack; ``None`` for a plain RGB image.
        notes: the loader's notes on conversions (alpha dropped, 16-bit scaled, ...).
    """

    name: str
    image: torch.Tensor
    groups: tuple[ChannelGroup, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str) -> LoadedItem:
        """The same item with its image on ``device``."""
        return replace(self, image=self.image.to(device))

    def score(
        self, recon: torch.Tensor, names: Sequence[str], *, lpips_weights: str | Path | None = None
    ) -> tuple[dict[str, float | None], list[str]]:
        """The metrics ``names`` of the reconstruction ``recon`` ``[C, H, W]`` against the image.

        A plain image gets one value per metric; a stack gets ``psnr`` over all channels plus
        ``<group>/<metric>`` for every channel group (:func:`~gsbench.data.stacks.stack_metrics`).
        Returns ``(values, notes)``.
        """
        if self.groups is None:
            return compute_metrics_with_notes(self.image, recon, list(names), lpips_weights=lpips_weights)
        return stack_metrics(self.image, recon, self.groups, list(names), lpips_weights=lpips_weights)

    def record_fields(self) -> dict[str, Any]:
        """What the item adds to its record: a stack's ``channel_groups``; nothing for a plain image."""
        return {} if self.groups is None else {"channel_groups": stack_info(self.groups)}

    def loggable(self, recon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(image, recon)`` for an image logger, both ``[3, H, W]``; ``None`` for a stack.

        Image loggers show RGB pictures; a stack's channels are no picture, so it is not logged.
        """
        return (self.image, recon) if self.groups is None else None

    def save_reconstruction(self, recon: torch.Tensor, folder: Path) -> str | list[str]:
        """Write ``recon`` ``[C, H, W]`` as 8-bit PNG(s) into ``folder``; the file name(s) for the record.

        A plain image gives ``<name>.png``; a stack one ``<name>_<group>.png`` per channel group.
        """
        if self.groups is not None:
            return save_stack_pngs(recon, self.groups, folder, self.name)
        png = folder / f"{self.name}.png"
        folder.mkdir(parents=True, exist_ok=True)
        arr = (recon.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        Image.fromarray(arr).save(png)
        return png.name


def load_item(item: ImageItem, *, max_pixels: int = MAX_PIXELS) -> LoadedItem:
    """Read a dataset item: an image file, or a texture stack when ``item.path`` is a directory.

    Raises:
        ImageError: the file (or a file of the stack) cannot be used; the message names it and why.
    """
    if is_stack(item.path):
        image, groups, notes = load_stack(item.path, max_pixels=max_pixels)
        return LoadedItem(item.name, image, tuple(groups), notes)
    image, notes = load_image(item.path, max_pixels=max_pixels)
    return LoadedItem(item.name, image, None, notes)
