"""What a dataset *is*, for records and reports: a name that tells image sets apart, and a content hash.

``kodak`` or ``div2k_valid_x2`` name fixed image sets (checked against sha256 sums), so their name is
their identity. ``folder`` and ``texture_stack`` with ``dataset.path`` are whatever the directory holds:
two runs on two different folders must never be averaged as one dataset. Their records therefore name
the dataset ``<kind>-<label>-<hash8>``: the label is ``dataset.label`` when given, else the directory's
name, and ``hash8`` starts the sha256 of the directory's file list (every image file the dataset offers
before ``images``/``limit``, by name and content). A folder that gains, loses or changes a file is a new
dataset; selecting fewer of its images is not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .download import sha256_file
from .registry import DATASETS, ImageItem, _opt

# datasets whose content is whatever ``dataset.path`` holds (a ``texture_stack`` without a path reads
# ``<data root>/texture_stacks``, which is just as open-ended)
PATH_DATASETS = ("folder", "texture_stack")


def item_sha256(path: Path) -> str:
    """sha256 of an image file; for a texture stack (a directory) the hash of its files' names and hashes."""
    path = Path(path)
    if path.is_dir():
        lines = [f"{p.name}\t{sha256_file(p)}" for p in sorted(path.iterdir()) if p.is_file()]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return sha256_file(path)


def list_hash(hashes: Mapping[str, str]) -> str:
    """sha256 of a file list: sorted ``name<TAB>sha256`` lines, so order and paths do not matter."""
    lines = [f"{name}\t{sha}" for name, sha in sorted(hashes.items())]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _label(text: str) -> str:
    """A label safe in a folder name: letters, digits, ``.``, ``_`` and ``-``; other runs become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "root"


def dataset_identity(
    cfg: Mapping[str, Any], items: Sequence[ImageItem], data_dir: str | Path | None = None
) -> dict[str, Any]:
    """The record fields that identify the dataset ``cfg`` resolved to ``items``.

    Returns ``{"dataset", "dataset_hash", "dataset_path", "dataset_files", "source_sha256"}``:
    ``dataset`` is the name records and reports use, ``dataset_hash`` the sha256 of the offered file list
    (for a named set: of the selected files, which its checksums already pin), ``dataset_path`` the
    directory of a path dataset (else None), ``dataset_files`` how many files the hash covers and
    ``source_sha256`` ``{image name: sha256}`` of the selected images.
    """
    kind = str(_opt(cfg, "name"))
    selected = {item.name: item_sha256(item.path) for item in items}
    if kind not in PATH_DATASETS:
        return {
            "dataset": kind,
            "dataset_hash": list_hash(selected),
            "dataset_path": None,
            "dataset_files": len(selected),
            "source_sha256": selected,
        }
    # every file the directory offers, whatever images/limit selected (resolving again lists them)
    everything = DATASETS.get(kind).resolve({**dict(cfg), "images": None, "limit": None}, data_dir)
    offered = {item.name: selected.get(item.name) or item_sha256(item.path) for item in everything}
    digest = list_hash(offered)
    folder = _folder(cfg, items)
    label = _label(str(_opt(cfg, "label") or folder.name))
    return {
        "dataset": f"{kind}-{label}-{digest[:8]}",
        "dataset_hash": digest,
        "dataset_path": str(folder),
        "dataset_files": len(offered),
        "source_sha256": selected,
    }


def _folder(cfg: Mapping[str, Any], items: Sequence[ImageItem]) -> Path:
    """The directory of a path dataset: ``dataset.path``, else the common parent of its items."""
    path = _opt(cfg, "path")
    if path:
        return Path(str(path)).expanduser().absolute()
    return Path(items[0].path).absolute().parent
