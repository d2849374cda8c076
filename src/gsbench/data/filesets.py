"""Fixed file sets: datasets with a known list of files, verified by sha256 and downloadable.

Kodak is fetched file by file (:class:`PerFileSpec`), DIV2K as one zip (:class:`ZipSpec`); both live under
``<data root>/<subdir>``. Registering them here adds ``dataset=kodak|div2k_valid|div2k_valid_x2``.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .download import DownloadError, fetch, read_checksums, sha256_file
from .images import DatasetError
from .registry import DATASETS, DatasetSpec, ImageItem, _data_root, _images, _limit, _opt, select

log = logging.getLogger(__name__)


def _short_list(names: Sequence[str], n: int = 6) -> str:
    """``a, b, c, ..., z (26 files)`` for long lists."""
    if len(names) <= n:
        return ", ".join(names)
    return f"{', '.join(names[:3])}, ..., {', '.join(names[-2:])} ({len(names)} files)"


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
