"""The record schema: one JSON file per (method, dataset, image, budget, seed). The runner writes records,
the report reads them; both import this module and neither imports the other.

Layout: ``<output_dir>/records/<method>/<dataset>/g<budget>_s<seed>_<config hash>/<image>.json``, beside
the image's bitstream and reconstruction PNG. A record holds:

* identity: ``record_version`` (:data:`RECORD_VERSION`), ``method``, ``dataset`` (with ``dataset_hash``,
  ``dataset_path`` for a folder), ``image``, ``budget`` and ``budget_name``, ``seed``, ``task``;
* the resolved ``config`` and its ``config_hash``;
* ``status`` (``ok`` | ``failed``; a failed one has ``error``, ``error_type``, ``traceback``);
* ``metrics``: ``{name: float | None}`` in the metric registry's order (:mod:`gsbench.metrics.registry`),
  with ``metric_notes`` saying why a value is None;
* size and rate: ``num_gaussians``, ``num_params``, ``bpp`` (file bytes), ``bpp_payload`` (the papers'
  analytic count), ``bitstream_bytes``;
* timings: ``fit_seconds``, ``encode_seconds``, ``decode_seconds``, ``render`` and ``decode`` blocks
  (``render_fps``, ``decode_fps``, medians), ``peak_memory_mib``;
* provenance: ``device``, ``render_backend``, ``versions``, ``git``, ``finished_at``, ``source_sha256``.

Files are written atomically (a crash never leaves half a record) and strict JSON (NaN/inf become null).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "RECORD_VERSION",
    "load_raw",
    "load_records",
    "read_record",
    "record_dir",
    "should_skip",
    "write_json_atomic",
]

#: Records of another version are not gsbench records of this schema: readers skip them.
RECORD_VERSION = 1


def record_dir(output_dir: Path, method: str, dataset: str, budget: int, seed: int, cfg_hash: str) -> Path:
    """Folder of one configuration's records inside a job's output directory."""
    return Path(output_dir) / "records" / method / dataset / f"g{budget}_s{seed}_{cfg_hash}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(_jsonable(data), fh, indent=2, sort_keys=False, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None if it is missing or unreadable (then it is simply redone)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def should_skip(path: Path, resume: bool, retry_failed: bool) -> bool:
    """Whether an existing record at ``path`` means the image is done."""
    if not resume:
        return False
    rec = read_record(path)
    if rec is None:
        return False
    return rec.get("status") == "ok" or not retry_failed


def load_raw(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every record below ``root`` (recursively) with its path; other JSON files are skipped."""
    out = []
    for p in sorted(Path(root).rglob("*.json")):
        rec = read_record(p)
        if isinstance(rec, dict) and rec.get("record_version") == RECORD_VERSION:
            out.append((p, rec))
    return out


def load_records(root: Path) -> list[dict[str, Any]]:
    """Every record below ``root`` (recursively), skipping unreadable files."""
    return [rec for _, rec in load_raw(root)]


def _jsonable(x: Any) -> Any:
    """Replace non-finite floats (invalid JSON) by None, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x
