"""Fetch files over HTTP(S) with an atomic write, a progress bar and sha256 verification."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .images import DatasetError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class DownloadError(DatasetError):
    """A download failed (network/HTTP error) or its content did not match the expected sha256."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def read_checksums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <file name>`` per line) into ``{file name: hex}``."""
    sums: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, _, name = line.partition(" ")
        sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def fetch(url: str, dest: str | Path, sha256: str | None = None, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (parents created) and return ``dest``.

    The data goes to a temporary file beside ``dest`` that is renamed into place only once complete
    and, when ``sha256`` is given, verified; on any failure nothing is left at ``dest`` or beside it.
    Raises :class:`DownloadError` with the URL, the destination and the reason.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _stream(url, dest, out, timeout)
        if sha256 is not None and digest != sha256.lower():
            raise DownloadError(
                f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {digest}; "
                f"the download was refused and nothing was written to {dest}"
            )
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    log.info("downloaded %s -> %s", url, dest)
    return dest


def _stream(url: str, dest: Path, out, timeout: float) -> str:
    """Copy the body of ``url`` into the open file ``out``; returns its hex sha256."""
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=None) as bar:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"HTTP {exc.code} ({exc.reason}) fetching {url} for {dest}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"cannot download {url} ({reason}); fetch it by hand and put it at {dest}"
        ) from exc
    return h.hexdigest()
