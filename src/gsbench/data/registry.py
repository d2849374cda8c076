"""Dataset registry: the registered datasets and how a ``dataset`` config node selects their images.

A dataset config node (``configs/dataset/*.yaml``) has the keys ``name, subdir, limit, images, path,
download, verify`` (and optionally ``url``).  :func:`resolve_dataset` turns it into a list of
:class:`ImageItem`; see ``docs/datasets.md`` for the rules. The datasets themselves live beside this
module: fixed, verified file sets (Kodak, DIV2K) in :mod:`.filesets`, directories of images (``folder``,
``samples``) in :mod:`.folders`, texture stacks in :mod:`.stacks`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import Registry, UnknownNameError
from .images import DatasetError

#: File extensions the ``folder`` dataset picks up (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class ImageItem:
    """One image of a dataset: ``name`` is the file stem (e.g. ``kodim01``), ``path`` the file."""

    name: str
    path: Path


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def dataset_names() -> list[str]:
    """Names of the registered datasets, sorted."""
    return DATASETS.names()


def resolve_dataset(cfg: Mapping, data_dir: str | Path | None) -> list[ImageItem]:
    """The images selected by the ``dataset`` config node ``cfg``, with data root ``data_dir``.

    Applies ``images`` (names to keep, in the order given) then ``limit`` (first N), checks the
    files exist (fetching them first when ``download`` is true) and verifies known sha256 sums when
    ``verify`` is true.  Raises :class:`DatasetError` saying exactly what to do otherwise.
    """
    name = _opt(cfg, "name")
    if not name:
        raise DatasetError(f"dataset config has no 'name'; choose one of: {', '.join(dataset_names())}")
    try:
        spec = DATASETS.get(str(name))
    except UnknownNameError as exc:
        raise DatasetError(f"{exc} (e.g. dataset={dataset_names()[0]} on the command line)") from None
    items = spec.resolve(cfg, data_dir)
    if not items:
        raise DatasetError(f"dataset {name!r}: the selection (images/limit) is empty")
    return items


class DatasetSpec:
    """Base class of registered datasets: ``resolve`` returns the selected, existing images."""

    name: str
    description: str

    def resolve(self, cfg: Mapping, data_dir: str | Path | None) -> list[ImageItem]:
        """The selected images; raises :class:`DatasetError` when they cannot be provided."""
        raise NotImplementedError


# --------------------------------------------------------------------------- config helpers


def _opt(cfg: Mapping, key: str, default: Any = None) -> Any:
    """``cfg[key]`` for a dict or an OmegaConf DictConfig, ``default`` when absent or null."""
    value = cfg.get(key, default)
    return default if value is None else value


def _images(cfg: Mapping) -> list[Any] | None:
    """The ``images`` selection as a plain list (a single string is a one-element list)."""
    images = _opt(cfg, "images")
    if images is None:
        return None
    if isinstance(images, str | int):
        return [images]
    return list(images)


def _limit(cfg: Mapping, dataset: str) -> int | None:
    """The ``limit`` as a positive int or None."""
    limit = _opt(cfg, "limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DatasetError(f"dataset {dataset!r}: limit must be a positive integer or null, got {limit!r}")
    return limit


def _match_name(item: Any, valid: Sequence[str]) -> str | None:
    """The valid name ``item`` refers to: exact, with an image extension, or a number like 0829."""
    text = str(item)
    if text in valid:
        return text
    stem, ext = os.path.splitext(text)
    if ext.lower() in IMAGE_EXTENSIONS and stem in valid:
        return stem
    if isinstance(item, int) and not isinstance(item, bool):
        hits = [v for v in valid if v.isdigit() and int(v) == item]
        return hits[0] if len(hits) == 1 else None
    return None


def select(names: Sequence[str], images: list[Any] | None, limit: int | None, dataset: str) -> list[str]:
    """Apply ``images`` (keep these, in the order given) then ``limit`` (first N) to ``names``."""
    chosen = list(names)
    if images is not None:
        picked = [_match_name(item, names) for item in images]
        unknown = [str(item) for item, hit in zip(images, picked, strict=True) if hit is None]
        if unknown:
            raise DatasetError(
                f"dataset {dataset!r}: unknown image name(s) {', '.join(unknown)}; valid names: "
                f"{', '.join(names)} (quote names that look like numbers, e.g. '0829')"
            )
        chosen = list(dict.fromkeys(picked))  # drop repeats, keep the given order
    return chosen[:limit] if limit is not None else chosen


def _data_root(data_dir: str | Path | None, dataset: str) -> Path:
    """The absolute data root: ``data_dir``, else ``$GSBENCH_DATA``."""
    root = data_dir if data_dir not in (None, "") else os.environ.get("GSBENCH_DATA")
    if not root:
        raise DatasetError(
            f"dataset {dataset!r}: no data directory; set GSBENCH_DATA=/path/to/data or paths.data_dir=..."
        )
    return Path(root).expanduser().absolute()
