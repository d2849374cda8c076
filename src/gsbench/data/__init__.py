"""Datasets: image loading with an explicit policy for odd inputs, the dataset registry and downloads.

Public API::

    ImageError, DatasetError          # exceptions (messages say which file / what to do)
    ImageItem(name, path)             # one image of a dataset (name = file stem)
    load_image(path) -> (tensor 3xHxW float32 in [0,1], notes)
    load_item(item) -> LoadedItem     # image [C,H,W], channel groups (stacks), notes; score/save
    DATASETS, dataset_names()         # registry of dataset specs
    resolve_dataset(cfg, data_dir) -> list[ImageItem]

See ``docs/datasets.md``.
"""

from . import filesets, folders, stacks  # noqa: F401  (register kodak, div2k_*, folder, samples, texture_stack)
from .download import DownloadError, fetch, sha256_file
from .images import MAX_PIXELS, DatasetError, ImageError, load_image
from .items import LoadedItem, load_item
from .registry import DATASETS, IMAGE_EXTENSIONS, DatasetSpec, ImageItem, dataset_names, resolve_dataset

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "DatasetError",
    "DatasetSpec",
    "DownloadError",
    "ImageError",
    "ImageItem",
    "LoadedItem",
    "dataset_names",
    "fetch",
    "load_image",
    "load_item",
    "resolve_dataset",
    "sha256_file",
]
