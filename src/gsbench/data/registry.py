"""Dataset registry: where each dataset's images live, how they are selected, verified and fetched.

A dataset config node (``configs/dataset/*.yaml``) has the keys ``name, subdir, limit, images, path,
download, verify`` (and optionally ``url``).  :func:`resolve_dataset` turns it into a list of
:class:`ImageItem`; see ``docs/datasets.md`` for the rules.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..registry import Registry, UnknownNameError
from .download import DownloadError, fetch, read_checksums, sha256_file
from .images import DatasetError

log = logging.getLogger(__name__)

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


def _short_list(names: Sequence[str], n: int = 6) -> str:
    """``a, b, c, ..., z (26 files)`` for long lists."""
    if len(names) <= n:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, ..., {', '.join(names[-2:])} ({len(names)} files)"


# --------------------------------------------------------------------------- fixed file sets


@dataclass(frozen=True)
class FileSetSpec(DatasetSpec):
    """A dataset with a fixed list of files under ``<data root>/<subdir>``.

    ``url`` is the default download source (overridden by ``dataset.url`` or ``$GSBENCH_<NAME>_URL``);
    ``partial_ok`` lets an incomplete copy be used (with a warning) when no names are requested.
    """

    name: str
    description: str
    names: tuple[str, ...]
    url: str
    suffix: str = ".png"
    partial_ok: bool = False

    def file_name(self, name: str) -> str:
        """File name of image ``name``."""
        return name + self.suffix

    def checksums(self) -> dict[str, str]:
        """Known sha256 sums ``{file name: hex}`` from the packaged ``checksums/<name>.sha256``."""
        res = importlib.resources.files("gsbench.data") / "checksums" / f"{self.name}.sha256"
        return read_checksums(res.read_text()) if res.is_file() else {}

    def source_url(self, cfg: Mapping) -> str:
        """Download source: ``dataset.url``, else ``$GSBENCH_<NAME>_URL``, else the public default."""
        env = os.environ.get(f"GSBENCH_{self.name.upper()}_URL")
        return str(_opt(cfg, "url") or env or self.url)

    def resolve(self, cfg: Mapping, data_dir: str | Path | None) -> list[ImageItem]:
        """Select, fetch if asked, check presence and verify (see :func:`resolve_dataset`)."""
        root_dir = _data_root(data_dir, self.name)
        folder = root_dir / str(_opt(cfg, "subdir", self.name))
        images = _images(cfg)
        download = bool(_opt(cfg, "download", False))
        chosen = select(self.names, images, None, self.name)
        if self.partial_ok and images is None and not download:
            chosen = self._present_subset(folder, chosen)
        chosen = select(chosen, None, _limit(cfg, self.name), self.name)
        missing = [n for n in chosen if not (folder / self.file_name(n)).is_file()]
        if missing and download:
            self.fetch(folder, missing, cfg)
            missing = [n for n in chosen if not (folder / self.file_name(n)).is_file()]
        if missing:
            raise DatasetError(self._missing_message(folder, root_dir, missing, len(chosen), cfg))
        items = [ImageItem(n, folder / self.file_name(n)) for n in chosen]
        if _opt(cfg, "verify", True):
            self.verify(items)
        return items

    def _present_subset(self, folder: Path, chosen: list[str]) -> list[str]:
        """For partial-ok datasets: the present files when some but not all are there."""
        present = [n for n in chosen if (folder / self.file_name(n)).is_file()]
        if present and len(present) < len(chosen):
            log.warning(
                "dataset %s: only %d of the %d images are present in %s; using those %d "
                "(set dataset.download=true to fetch the full set)",
                self.name,
                len(present),
                len(chosen),
                folder,
                len(present),
            )
            return present
        return chosen

    def verify(self, items: Sequence[ImageItem]) -> None:
        """Check the sha256 of every item whose checksum is known; DatasetError on a mismatch."""
        sums = self.checksums()
        for item in items:
            expected = sums.get(item.path.name)
            if expected is None:
                continue
            actual = sha256_file(item.path)
            if actual != expected:
                raise DatasetError(
                    f"dataset {self.name!r}: checksum mismatch for {item.path}: expected sha256 {expected}, "
                    f"got {actual}. The file is corrupt or a different version: replace it (delete it and "
                    "run with dataset.download=true, or copy it again), or set dataset.verify=false to use "
                    "it anyway"
                )

    def fetch(self, folder: Path, names: Sequence[str], cfg: Mapping) -> None:
        """Download the missing files ``names`` into ``folder``."""
        raise NotImplementedError

    def _missing_message(
        self, folder: Path, root_dir: Path, missing: Sequence[str], n_selected: int, cfg: Mapping
    ) -> str:
        """The 'what to do' message for missing files."""
        files = _short_list([self.file_name(n) for n in missing])
        return (
            f"dataset {self.name!r}: {len(missing)} of the {n_selected} selected image files are missing "
            f"from {folder} ({files}). Fix one of:\n"
            f"  * put these files into {folder}/\n"
            f"  * point the data root at a directory containing '{folder.name}/': "
            f"GSBENCH_DATA=/that/dir or paths.data_dir=/that/dir (now {root_dir})\n"
            f"  * download them: dataset.download=true (from {self.source_url(cfg)})"
        )


@dataclass(frozen=True)
class PerFileSpec(FileSetSpec):
    """A file set downloaded file by file from ``<url><file name>`` (Kodak)."""

    def fetch(self, folder: Path, names: Sequence[str], cfg: Mapping) -> None:
        """Fetch each missing file, verified against its known sha256."""
        base = self.source_url(cfg)
        base = base if base.endswith("/") else base + "/"
        sums = self.checksums()
        for n in names:
            fname = self.file_name(n)
            log.info("dataset %s: downloading %s", self.name, fname)
            fetch(base + fname, folder / fname, sha256=sums.get(fname))


@dataclass(frozen=True)
class ZipSpec(FileSetSpec):
    """A file set distributed as one zip (DIV2K): download it, extract only the image files, delete it."""

    def fetch(self, folder: Path, names: Sequence[str], cfg: Mapping) -> None:
        """Download the zip into ``folder``, extract the dataset's images, verify known sums."""
        url = self.source_url(cfg)
        archive = folder / (url.rstrip("/").rsplit("/", 1)[-1] or f"{self.name}.zip")
        log.info("dataset %s: downloading %s (the whole archive is needed)", self.name, url)
        fetch(url, archive)
        try:
            extracted = self._extract(archive, folder)
        finally:
            archive.unlink(missing_ok=True)
        log.info("dataset %s: extracted %d images into %s", self.name, len(extracted), folder)

    def _extract(self, archive: Path, folder: Path) -> list[Path]:
        """Extract members whose base name is one of the dataset's files (flattened, atomically)."""
        wanted = {self.file_name(n) for n in self.names}
        sums = self.checksums()
        out: list[Path] = []
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    base = Path(info.filename).name
                    if info.is_dir() or base not in wanted:
                        continue
                    out.append(self._extract_member(zf, info, folder / base, sums.get(base)))
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"dataset {self.name!r}: {archive} is not a valid zip ({exc})") from exc
        return out

    def _extract_member(
        self, zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, sha: str | None
    ) -> Path:
        """Write one member to ``dest`` via a temp file, refusing it on a checksum mismatch."""
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                shutil.copyfileobj(src, out)
            actual = sha256_file(tmp)
            if sha is not None and actual != sha:
                raise DownloadError(
                    f"dataset {self.name!r}: checksum mismatch for {info.filename} in the downloaded zip: "
                    f"expected sha256 {sha}, got {actual}; refused, nothing written to {dest}"
                )
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return dest


# --------------------------------------------------------------------------- discovered file sets


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


# --------------------------------------------------------------------------- the registry

KODAK = DATASETS.add(
    "kodak",
    PerFileSpec(
        name="kodak",
        description="Kodak PhotoCD set: kodim01..kodim24, 768x512 (some 512x768)",
        names=tuple(f"kodim{i:02d}" for i in range(1, 25)),
        url="http://r0k.us/graphics/kodak/kodak/",
    ),
)
DIV2K_VALID = DATASETS.add(
    "div2k_valid",
    ZipSpec(
        name="div2k_valid",
        description="DIV2K validation HR images 0801..0900 (~2040 px on the long side)",
        names=tuple(f"{i:04d}" for i in range(801, 901)),
        url="http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
        partial_ok=True,
    ),
)
DIV2K_VALID_X2 = DATASETS.add(
    "div2k_valid_x2",
    ZipSpec(
        name="div2k_valid_x2",
        description="DIV2K validation, 2x bicubic LR (as in GaussianImage): 0801x2..0900x2",
        names=tuple(f"{i:04d}x2" for i in range(801, 901)),
        url="http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_LR_bicubic_X2.zip",
        partial_ok=True,
    ),
)
FOLDER = DATASETS.add("folder", FolderSpec())
SAMPLES = DATASETS.add("samples", SamplesSpec())
