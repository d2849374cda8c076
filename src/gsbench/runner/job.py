"""Run one job: every image of a dataset through one method at one budget, one record per image."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from ..data import ImageError, ImageItem, load_item, resolve_dataset
from ..data.identity import dataset_identity
from ..data.images import MAX_PIXELS
from ..errors import UserError
from ..gaussians.render import RenderOptions, resolve_backend
from ..loggers import make_logger
from ..methods import FitContext, get_method, methods_for_task
from ..records import RECORD_VERSION, read_record, record_dir, should_skip, write_json_atomic
from .provenance import config_hash, device_info, git_commit, versions
from .summary import summary_table
from .tasks import TASKS

log = logging.getLogger("gsbench")


@dataclass
class JobResult:
    """What a finished job leaves: its records folder, the summary table, and the failed images."""

    records_dir: Path
    table: Any  # pandas.DataFrame
    failed: list[str]
    skipped: list[str]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            "device=cuda was asked for but torch sees no CUDA device; use device=cpu or device=auto"
        )
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    return torch.device(name)


def run_job(cfg: DictConfig, output_dir: Path) -> JobResult:
    """Fit, render and score every selected image; records go under ``output_dir``.

    An image that fails (bad file, diverging fit, out of memory, ...) gets a ``failed`` record with the
    reason and the job goes on; images whose ``ok`` record exists are skipped (resume).
    """
    device = resolve_device(str(cfg.device))
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    chash = config_hash(plain)
    seed = int(cfg.seed)
    items = resolve_dataset(cfg.dataset, cfg.paths.data_dir)
    method = get_method(cfg.method.name, cfg.method, cfg.train, cfg.get("codec"))
    budget = method.budget(int(cfg.gaussians))
    if str(cfg.task.name) not in method.tasks:
        able = ", ".join(methods_for_task(str(cfg.task.name)))
        raise UserError(
            f"method {cfg.method.name!r} supports task={'|'.join(method.tasks)}, not {cfg.task.name!r} "
            f"(methods for task={cfg.task.name}: {able})"
        )
    identity = dataset_identity(cfg.dataset, items, cfg.paths.data_dir)  # folders: name + content hash
    source_sha256 = identity.pop("source_sha256")
    rdir = record_dir(output_dir, cfg.method.name, identity["dataset"], budget, seed, chash)
    options = RenderOptions.from_config(cfg.render)
    backend = resolve_backend(options.backend, device)
    common = {
        "record_version": RECORD_VERSION,
        "method": cfg.method.name,
        **identity,
        "budget": budget,
        "budget_name": method.budget_name,
        "seed": seed,
        "task": cfg.task.name,
        "config_hash": chash,
        "config": plain,
        "device": device_info(device),
        "render_backend": backend if method.budget_name == "gaussians" else None,
        "versions": versions(),
        "git": git_commit(),
    }
    log.info(
        "job: %s on %s (%d images), %s %d, seed %d, %s/%s -> %s",
        cfg.method.name,
        identity["dataset"],
        len(items),
        method.budget_name,
        budget,
        seed,
        device,
        backend,
        rdir,
    )
    logger = make_logger(cfg.logger, plain, output_dir)
    job = _Job(cfg, method, device, options, rdir, common, logger, source_sha256)
    bar = tqdm(items, desc=f"{cfg.method.name}/{identity['dataset']}", unit="img", disable=not cfg.progress)
    try:
        for index, item in enumerate(bar):
            bar.set_postfix(image=item.name)
            job.run_item(index, item)
    finally:
        logger.finish()
    table = summary_table(list(_records(rdir, items)), str(cfg.task.name))
    return JobResult(rdir, table, job.failed, job.skipped)


@dataclass
class _Job:
    """The state shared by the images of one job."""

    cfg: DictConfig
    method: Any
    device: torch.device
    options: RenderOptions
    rdir: Path
    common: dict[str, Any]
    logger: Any
    source_sha256: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def run_item(self, index: int, item: ImageItem) -> None:
        """Run one image unless its record exists; write its record whatever happens (but Ctrl-C)."""
        cfg = self.cfg
        path = self.rdir / f"{item.name}.json"
        if should_skip(path, bool(cfg.resume), bool(cfg.retry_failed)):
            self.skipped.append(item.name)
            log.info("%s: record exists, skipped (resume)", item.name)
            return
        record = dict(self.common, image=item.name, source=str(item.path))
        record["source_sha256"] = self.source_sha256.get(item.name)
        try:
            record.update(
                _run_image(cfg, self.method, item, self.device, self.options, self.rdir, self.logger)
            )
            record["status"] = "ok"
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one image failing must not stop the others
            record.update(_failure(exc))
            self.failed.append(item.name)
            log.error("%s FAILED: %s", item.name, record["error"])
        write_json_atomic(path, record)
        if record["status"] == "ok":
            self.logger.log_record(record)


def _run_image(cfg, method, item: ImageItem, device, options, rdir: Path, logger) -> dict[str, Any]:
    """Load one dataset item, run the task on it, let the item score and save the result: its record part.

    Plain images and texture stacks take the same path; what differs (per-group metrics, one PNG per
    group, no image logging) is the loaded item's business (:class:`gsbench.data.LoadedItem`).
    """
    max_pixels = int(OmegaConf.select(cfg, "limits.max_pixels", default=None) or MAX_PIXELS)
    loaded = load_item(item, max_pixels=max_pixels).to(device)
    image = loaded.image
    ctx = FitContext(
        device=device,
        seed=int(cfg.seed),
        render=options,
        log_every=int(cfg.log_every),
        progress=bool(cfg.progress),
        label=item.name,
        logger=lambda step, values: logger.log({"image": item.name, "train/step": step, **values}),
        checkpoint_dir=rdir if float(cfg.get("checkpoint_every", 0) or 0) > 0 else None,
        checkpoint_every=float(cfg.get("checkpoint_every", 0) or 0),
    )
    torch.manual_seed(int(cfg.seed))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out, recon = TASKS.get(str(cfg.task.name))(cfg, method, image, ctx, rdir / item.name)
    metrics, metric_notes = loaded.score(
        recon, list(cfg.metrics.names), lpips_weights=cfg.metrics.lpips_weights
    )
    out.update(loaded.record_fields())
    out.update(
        height=int(image.shape[1]),
        width=int(image.shape[2]),
        metrics=metrics,
        notes=[*loaded.notes, *metric_notes, *out.get("notes", [])],
        finished_at=time.time(),
    )
    if device.type == "cuda":
        out["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if (pair := loaded.loggable(recon)) is not None:
        logger.log_images(item.name, *pair)
    if cfg.save_reconstructions:
        out["reconstruction"] = loaded.save_reconstruction(recon, rdir)
    return out


def _failure(exc: BaseException) -> dict[str, Any]:
    reason = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, torch.OutOfMemoryError):
        reason += " (out of memory: lower gaussians or render.chunk_pixels, or use a larger device)"
    return {
        "status": "failed",
        "error": reason,
        "error_type": type(exc).__name__,
        "traceback": traceback.format_exc(limit=8),
        "expected": isinstance(exc, ImageError),
    }


def _records(rdir: Path, items: list[ImageItem]):
    for item in items:
        rec = read_record(rdir / f"{item.name}.json")
        if rec is not None:
            yield rec
