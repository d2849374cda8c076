"""Directories of images: ``folder`` (any directory, ``dataset.path``) and ``samples`` (the colour photos
shipped inside scikit-image). Nothing to download or verify; registering them here adds both datasets.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .images import DatasetError
from .registry import DATASETS, IMAGE_EXTENSIONS, DatasetSpec, ImageItem, _images, _limit, _opt, select


@dataclass(frozen=True)
class FolderSpec(DatasetSpec):
    """Any directory of images (``dataset.path``), sorted by name; nothing to download or verify."""

    name: str = "folder"
    description: str = "all images (png/jpg/jpeg/bmp/tif/tiff/webp/ppm/pgm) in dataset.path, by name"

    def resolve(self, cfg: Mapping, data_dir: str | Path | None) -> list[ImageItem]:
        """List, select and return the images of ``dataset.path``."""
        path = _opt(cfg, "path")
        if not path:
            raise DatasetError("dataset 'folder' needs a directory: set dataset.path=/path/to/images")
        folder = Path(str(path)).expanduser().absolute()
        if not folder.is_dir():
            raise DatasetError(f"dataset 'folder': {folder} is not a directory; set dataset.path to one")
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            raise DatasetError(
                f"dataset 'folder': no images in {folder} (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        by_name = _unique_stems(files, folder)
        chosen = select(sorted(by_name), _images(cfg), _limit(cfg, self.name), self.name)
        return [ImageItem(n, by_name[n]) for n in chosen]


def _unique_stems(files: Sequence[Path], folder: Path) -> dict[str, Path]:
    """``{stem: path}``; two files with one stem (a.png, a.jpg) would clash in outputs: refuse."""
    by_name: dict[str, Path] = {}
    for p in files:
        if p.stem in by_name:
            raise DatasetError(
                f"dataset 'folder': {by_name[p.stem].name} and {p.name} in {folder} share the name "
                f"{p.stem!r}; rename one (image names must be unique)"
            )
        by_name[p.stem] = p
    return by_name


@dataclass(frozen=True)
class SamplesSpec(DatasetSpec):
    """Colour photos shipped inside scikit-image's package (no download): the default for ``make run``."""

    name: str = "samples"
    description: str = "astronaut (512x512), coffee (400x600), chelsea (300x451) from skimage/data"
    files: tuple[str, ...] = ("astronaut.png", "chelsea.png", "coffee.png")

    def resolve(self, cfg: Mapping, data_dir: str | Path | None) -> list[ImageItem]:
        """Paths of the bundled photos inside the installed scikit-image package."""
        folder = skimage_data_dir()
        by_name = {Path(f).stem: folder / f for f in self.files}
        chosen = select(sorted(by_name), _images(cfg), _limit(cfg, self.name), self.name)
        missing = [str(by_name[n]) for n in chosen if not by_name[n].is_file()]
        if missing:
            raise DatasetError(
                f"dataset 'samples': scikit-image's bundled images are missing ({', '.join(missing)}); "
                "reinstall it: pip install --force-reinstall scikit-image"
            )
        return [ImageItem(n, by_name[n]) for n in chosen]


def skimage_data_dir() -> Path:
    """``skimage/data`` of the installed scikit-image, found without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("dataset 'samples' needs scikit-image: pip install scikit-image")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


FOLDER = DATASETS.add("folder", FolderSpec())
SAMPLES = DATASETS.add("samples", SamplesSpec())
