"""Config values checked once, before any work: types, ranges, and method/task pairs that cannot work.

Two passes share one table of :class:`Rule` s. :func:`check_argv` reads the command line's ``key=value``
overrides (every value of a sweep too) before Hydra starts, so a typo fails in one line before a single
job runs; :func:`check_config` checks the composed config of each job (values from config files and
presets, and the method/task pair). Both raise :class:`UserError` whose message names the key, the bad
value and the valid range; the command line prints it and exits with status 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import UserError

INT, FLOAT = "an integer", "a number"
MAX_GAUSSIANS = 1 << 24  # the bitstream's limit (gsbench.codec.container.Limits.max_gaussians)


@dataclass(frozen=True)
class Rule:
    """``key`` must be of ``kind`` (:data:`INT` or :data:`FLOAT`) in ``[lo, hi]``; ``lo_open``: ``> lo``.

    ``nullable`` accepts ``null``. Keys absent from a config are not checked (a method's own keys).
    """

    key: str
    kind: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    nullable: bool = False

    def valid_range(self) -> str:
        lo = "" if self.lo is None else (f"> {self.lo:g}" if self.lo_open else f">= {self.lo:g}")
        if self.hi is not None and self.lo is not None and not self.lo_open:
            text = f"{_fmt(self.lo)}..{_fmt(self.hi)}"
        elif self.hi is not None:
            text = f"{lo} and <= {_fmt(self.hi)}" if lo else f"<= {_fmt(self.hi)}"
        else:
            text = lo
        return f"{self.kind} {text}".strip() + (" or null" if self.nullable else "")

    def check(self, value: Any) -> None:
        """Raise :class:`UserError` unless ``value`` fits this rule."""
        if value is None and self.nullable:
            return
        number = _as_number(value, integer=self.kind == INT)
        ok = number is not None
        if ok and self.lo is not None:
            ok = number > self.lo if self.lo_open else number >= self.lo
        if ok and self.hi is not None:
            ok = number <= self.hi
        if not ok:
            raise UserError(f"{self.key}={_show(value)} is invalid: expected {self.valid_range()}")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _as_number(value: Any, integer: bool) -> float | int | None:
    """``value`` as a finite number (integral when ``integer``), else None; booleans are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return None
    if integer:
        return int(value) if float(value).is_integer() else None
    return value


def _positive_float(key: str) -> Rule:
    return Rule(key, FLOAT, 0, lo_open=True)


BITS = (1, 16)
RULES: tuple[Rule, ...] = (
    Rule("gaussians", INT, 1, MAX_GAUSSIANS),
    Rule("seed", INT, 0, 2**32 - 1),
    Rule("train.iterations", INT, 1, 10**9),  # 0 for classical codecs: see _iterations_rule
    Rule("train.max_iterations", INT, 1, 10**9),
    Rule("train.seconds", FLOAT, 0, lo_open=True, nullable=True),
    Rule("checkpoint_every", FLOAT, 0),
    Rule("log_every", INT, 0),
    Rule("task.fps_warmup", INT, 0, 10**6),
    Rule("task.fps_repeats", INT, 1, 10**6),
    Rule("dataset.limit", INT, 1, nullable=True),
    Rule("render.tile_size", INT, 1, 1024),
    Rule("render.torch_tile_size", INT, 1, 1024),
    Rule("render.chunk_pixels", INT, 1),
    Rule("limits.max_pixels", INT, 1, 1 << 32),
    Rule("limits.max_evals_per_pixel", INT, 1, 1 << 20),
    Rule("limits.min_bits_per_pixel", FLOAT, 0, 64, lo_open=True),
    Rule("method.quality", INT, 0, 100),
    Rule("method.hidden", INT, 1, 1024),
    Rule("method.layers", INT, 1, 64),
    Rule("method.w0", FLOAT, 1e-3, 1e4),
    Rule("method.w0_initial", FLOAT, 1e-3, 1e4),
    Rule("method.k", INT, 1, 64),
    Rule("method.eps", FLOAT, 0, lo_open=True),
    Rule("method.init_scale", FLOAT, 0, lo_open=True),
    Rule("method.scale_min", FLOAT, 0, lo_open=True),
    Rule("method.initial_ratio", FLOAT, 0, 1, lo_open=True),
    Rule("method.add_times", INT, 0, 10**6),
    Rule("method.add_every", INT, 1),
    Rule("method.lr_step", INT, 1),
    Rule("method.lr_gamma", FLOAT, 0, 1, lo_open=True),
    Rule("method.grow_every", INT, 1),
    Rule("method.prune_every", INT, 1),
    Rule("method.snapshot_every", INT, 1),
    Rule("method.gaussians_per_seed", INT, 1, 64),
    Rule("method.feature_dim", INT, 1, 1024),
    Rule("method.levels", INT, 1, 16),
    Rule("method.lmbda", FLOAT, 0),
    # null: follow train.iterations (the codec's stage length and warm-up derive from it)
    Rule("codec.qat_iterations", INT, 0, 10**9, nullable=True),
    Rule("codec.iterations", INT, 1, 10**9, nullable=True),
    Rule("codec.warmup", INT, 0, 10**9, nullable=True),
    Rule("codec.cholesky_bits", INT, *BITS),
    Rule("codec.position_bits", INT, *BITS),
    Rule("codec.covariance_bits", INT, *BITS),
    Rule("codec.color_bits", INT, *BITS),
    Rule("codec.bits", INT, *BITS),
    Rule("codec.rvq_stages", INT, 1, 8),
    Rule("codec.rvq_codebook", INT, 2, 255),
    Rule("codec.rvq_decay", FLOAT, 0, 1),
    Rule("codec.q_feature", FLOAT, 0, 1e6, lo_open=True),
    Rule("codec.q_scaling", FLOAT, 0, 1e6, lo_open=True),
    Rule("codec.q_offset", FLOAT, 0, 1e6, lo_open=True),
    *(
        _positive_float(k)
        for k in (
            "method.lr",
            "method.lr_position",
            "method.lr_color",
            "method.lr_scale",
            "method.lr_rotation",
            "codec.lr",
            "codec.quantizer_lr",
        )
    ),
)
BY_KEY = {r.key: r for r in RULES}


def method_tasks(name: str) -> tuple[str, ...]:
    """The tasks method ``name`` can run, from the method registry: a class's ``tasks`` if it declares
    them, else ``represent``, plus ``compress`` when it overrides :meth:`Method.compress`."""
    from .methods import METHODS, Method

    cls = METHODS.get(name)
    declared = getattr(cls, "tasks", None)
    if declared is not None:
        return tuple(declared)
    return ("represent", "compress") if cls.compress is not Method.compress else ("represent",)


def methods_for(task: str) -> list[str]:
    """Registered methods that can run ``task`` (sorted)."""
    from .methods import METHODS

    return [m for m in METHODS.names() if task in method_tasks(m)]


def check_pair(method: str, task: str) -> None:
    """Refuse a method/task pair that cannot work, listing the methods that can run ``task``."""
    from .methods import METHODS

    if method not in METHODS:
        return  # the unknown name gets its own message
    if task not in method_tasks(method):
        raise UserError(
            f"method={method} cannot run task={task} (it supports task={'|'.join(method_tasks(method))}); "
            f"methods with task={task}: {', '.join(methods_for(task))}"
        )


def _iterations_rule(method: str) -> Rule:
    from .methods import METHODS

    if method in METHODS and METHODS.get(method).budget_name == "quality":
        return Rule("train.iterations", INT, 0, 10**9)  # classical codecs train nothing
    return BY_KEY["train.iterations"]


def check_config(cfg: DictConfig) -> None:
    """Check a composed job config; raise :class:`UserError` naming the first bad key."""
    method = str(OmegaConf.select(cfg, "method.name", default=""))
    task = str(OmegaConf.select(cfg, "task.name", default=""))
    for rule in RULES:
        value = OmegaConf.select(cfg, rule.key, default="__absent__", throw_on_missing=False)
        if (isinstance(value, str) and value == "__absent__") or OmegaConf.is_config(value):
            continue  # absent, or a node (sgi's method.lr is per parameter group)
        (_iterations_rule(method) if rule.key == "train.iterations" else rule).check(value)
    if method and task:
        check_pair(method, task)


def check_argv(args: Iterable[str]) -> None:
    """Check the ``key=value`` overrides of a command line (each value of a sweep) before Hydra runs.

    Hydra's own parser types the values exactly as the job will see them; what it cannot parse is left
    to Hydra's error message. Method/task pairs are checked where both are given.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(list(args))
    except Exception:  # Hydra reports its own syntax errors
        return
    methods: list[str] = []
    tasks: list[str] = []
    iterations: list[Any] = []
    for ov in overrides:
        if ov.is_delete():
            continue
        key = ov.key_or_group.lstrip("+~")
        values = _values(ov)
        if values is None:
            continue
        # interpolations (${...}) are resolved at composition: the job-level check sees their values
        values = [v for v in values if not (isinstance(v, str) and "${" in v)]
        if key == "method":
            methods += [str(v) for v in values]
        elif key == "task":
            tasks += [str(v) for v in values]
        elif key == "train.iterations":
            iterations += values
        elif key in BY_KEY:
            for v in values:
                BY_KEY[key].check(v)
    for method in methods:
        for v in iterations:
            _iterations_rule(method).check(v)
        for task in tasks:
            check_pair(method, task)
    if not methods:
        for v in iterations:
            _iterations_rule("").check(v)


def _values(ov) -> list[Any] | None:
    """The values of an override (all of a simple sweep), or None for a range/glob/interval sweep."""
    from hydra.core.override_parser.types import ChoiceSweep

    try:
        value = ov.value()
    except Exception:
        return None
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    if ov.is_sweep_override():
        return None
    return [value]
