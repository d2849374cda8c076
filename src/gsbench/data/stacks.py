"""Texture stacks (Image-GS): a folder of same-size images concatenated along channels.

A stack is one directory; its image files, sorted by name, are the channel groups (``diffuse.png`` RGB,
``normal.png`` RGB, ``roughness.png`` grey, ...). Greyscale files (modes 1, L, LA, I, I;16, F) give one
channel, every other file three (after the RGB policy of :func:`gsbench.data.load_image`: alpha dropped
when opaque, 16-bit scaled, EXIF rotation applied; its notes are kept). All files must share one size.

The dataset ``texture_stack`` (``configs/dataset/texture_stack.yaml``) lists the stacks under
``dataset.path`` (or ``<data root>/<subdir>``): every sub-directory holding images is one stack, named by
the directory; a ``dataset.path`` that itself holds images (and no stack directories) is one stack.

Metrics are computed per channel group (:func:`stack_metrics`), as the paper reports textures, plus PSNR
over all channels; a one-channel group is replicated to three channels for the RGB metrics (PSNR, SSIM
and MS-SSIM are unchanged by that).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError

from ..metrics import compute_metrics_with_notes
from ..metrics.psnr import psnr_from_mse
from .images import MAX_PIXELS, DatasetError, ImageError, load_image
from .registry import (
    DATASETS,
    IMAGE_EXTENSIONS,
    DatasetSpec,
    ImageItem,
    _data_root,
    _images,
    _limit,
    _opt,
    select,
)

GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: What the paper reports for textures (it omits LPIPS and FLIP there).
STACK_METRICS = ("psnr", "psnr_8bit", "ssim", "ms_ssim")


@dataclass(frozen=True)
class ChannelGroup:
    """Channels ``start : start + channels`` of a stack came from the file ``name`` (its stem)."""

    name: str
    start: int
    channels: int

    @property
    def stop(self) -> int:
        return self.start + self.channels


def stack_files(folder: str | Path) -> list[Path]:
    """The image files of a stack directory, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def is_stack(path: str | Path) -> bool:
    """Whether a dataset item is a texture stack (a directory) rather than one image file."""
    return Path(path).is_dir()


def _channels(path: Path) -> int:
    try:
        with Image.open(path) as im:
            return 1 if im.mode in GREY_MODES else 3
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc})") from exc


def load_stack(
    folder: str | Path, *, max_pixels: int = MAX_PIXELS
) -> tuple[torch.Tensor, list[ChannelGroup], list[str]]:
    """Read a stack as ``[C, H, W]`` float32 in [0, 1], its channel groups and the loaders' notes.

    Raises:
        ImageError: no images in the folder, an unreadable file, or files of different sizes.
    """
    folder = Path(folder)
    files = stack_files(folder) if folder.is_dir() else []
    if not files:
        raise ImageError(f"{folder}: a texture stack must be a directory holding image files")
    parts, groups, notes, size, start = [], [], [], None, 0
    for path in files:
        rgb, file_notes = load_image(path, max_pixels=max_pixels)
        n = _channels(path)
        if size is None:
            size = tuple(rgb.shape[1:])
        elif tuple(rgb.shape[1:]) != size:
            raise ImageError(
                f"{path}: size {rgb.shape[2]}x{rgb.shape[1]} differs from the stack's {size[1]}x{size[0]} "
                "(all images of a texture stack must have one size)"
            )
        parts.append(rgb[:n])
        groups.append(ChannelGroup(path.stem, start, n))
        notes += [f"{path.name}: {note}" for note in file_notes]
        start += n
    return torch.cat(parts).contiguous(), groups, notes


def stack_metrics(
    ref: torch.Tensor,
    rec: torch.Tensor,
    groups: Sequence[ChannelGroup],
    names: Sequence[str] = STACK_METRICS,
    *,
    lpips_weights: str | Path | None = None,
) -> tuple[dict[str, float | None], list[str]]:
    """Metrics of a stack: ``psnr`` over all channels, then ``<group>/<metric>`` for every group.

    LPIPS and FLIP (if named) are computed for three-channel groups only. Returns ``(values, notes)``
    as :func:`gsbench.metrics.compute_metrics_with_notes`.
    """
    mse = float((ref.double() - rec.to(ref.device).double().clamp(0, 1)).square().mean())
    values: dict[str, float | None] = {"psnr": psnr_from_mse(mse)}  # all channels, as Image-GS
    notes: list[str] = []
    for g in groups:
        r, x = ref[g.start : g.stop], rec[g.start : g.stop]
        wanted = [n for n in names if g.channels == 3 or n not in ("lpips", "flip")]
        if g.channels == 1:
            r, x = r.expand(3, -1, -1), x.expand(3, -1, -1)
        elif g.channels != 3:
            r, x = r[:3], x[:3]  # not produced by load_stack; keep the metrics' 3-channel contract
        vals, group_notes = compute_metrics_with_notes(r, x, wanted, lpips_weights=lpips_weights)
        values.update({f"{g.name}/{k}": v for k, v in vals.items()})
        notes += [f"{g.name}: {note}" for note in group_notes]
    return values, notes


@dataclass(frozen=True)
class TextureStackSpec(DatasetSpec):
    """Texture stacks: the sub-directories of ``dataset.path`` (or ``<data root>/<subdir>``)."""

    name: str = "texture_stack"
    description: str = "texture stacks: each sub-folder of images (same size) is one multi-channel image"

    def resolve(self, cfg: Mapping, data_dir: str | Path | None) -> list[ImageItem]:
        path = _opt(cfg, "path")
        if path:
            folder = Path(str(path)).expanduser().absolute()
        else:
            folder = _data_root(data_dir, self.name) / str(_opt(cfg, "subdir", "texture_stacks"))
        if not folder.is_dir():
            raise DatasetError(
                f"dataset 'texture_stack': {folder} is not a directory; set dataset.path to a folder of "
                "stacks (one sub-folder of same-size images per stack) or to one stack"
            )
        stacks = {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and stack_files(p)}
        if not stacks and stack_files(folder):
            stacks = {folder.name: folder}
        if not stacks:
            raise DatasetError(f"dataset 'texture_stack': no stacks (folders of images) in {folder}")
        chosen = select(sorted(stacks), _images(cfg), _limit(cfg, self.name), self.name)
        return [ImageItem(n, stacks[n]) for n in chosen]


def save_stack_pngs(
    recon: torch.Tensor, groups: Sequence[ChannelGroup], folder: Path, stem: str
) -> list[str]:
    """Write each channel group of a reconstruction as ``<stem>_<group>.png`` (8-bit); the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for g in groups:
        arr = (recon[g.start : g.stop].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        name = f"{stem}_{g.name}.png"
        Image.fromarray(arr[..., 0] if g.channels == 1 else arr).save(folder / name)
        names.append(name)
    return names


def stack_info(groups: Sequence[ChannelGroup]) -> list[dict[str, Any]]:
    """The channel groups as JSON-ready dicts (for records)."""
    return [{"name": g.name, "start": g.start, "channels": g.channels} for g in groups]


if "texture_stack" not in DATASETS:
    TEXTURE_STACK = DATASETS.add("texture_stack", TextureStackSpec())
