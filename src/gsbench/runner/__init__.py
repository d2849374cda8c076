"""Job execution: records, resume, failure capture, timing and provenance."""

from .job import JobResult, resolve_device, run_job

__all__ = ["JobResult", "resolve_device", "run_job"]
