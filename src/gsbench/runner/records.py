"""The record schema as the runner sees it: :mod:`gsbench.records` (shared with the report), and the
per-image table of a job (:mod:`.summary`)."""

from __future__ import annotations

from ..records import (
    RECORD_VERSION,
    load_raw,
    load_records,
    read_record,
    record_dir,
    should_skip,
    write_json_atomic,
)
from .summary import summary_table

__all__ = [
    "RECORD_VERSION",
    "load_raw",
    "load_records",
    "read_record",
    "record_dir",
    "should_skip",
    "summary_table",
    "write_json_atomic",
]
