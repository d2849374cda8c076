"""Frozen, checked method options whose defaults are read from ``configs/method/<name>.yaml``.

Each method's ``config.py`` declares a frozen dataclass with one typed field per key of its YAML node
(``method`` or ``codec``) and no defaults in code: :meth:`Options.from_mapping` fills every field from the
YAML, lets the given mapping (a Hydra node, or the partial dict a test passes to ``get_method``) override
it, converts each value to its field's type and checks it, so a bad value fails when the method is built,
with one line naming the key, the value and what is valid.

Hydra bookkeeping is handled here once: ``name`` (the registry key) and ``budget_tag`` (a job folder's
name) are accepted and dropped; a default that interpolates another config group (instant_gi's
``checkpoint: ${init.checkpoint}``) is resolved within the method's own YAML file.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import UserError

# src/gsbench/methods/options.py -> the repository's configs/method (gsbench.config, a layer above, agrees)
METHOD_CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "method"
HYDRA_KEYS = frozenset({"name", "budget_tag"})  # in every node Hydra hands a method; no option of its own

T = TypeVar("T", bound="Options")


class ConfigError(UserError, ValueError):
    """A method option with a bad value: printed as one line by the CLI, and a ``ValueError`` in code."""


@functools.cache
def yaml_defaults(method: str, node: str) -> dict[str, Any]:
    """The ``node`` (``method`` or ``codec``) of ``configs/method/<method>.yaml`` as plain values.

    Interpolations are resolved inside the file (``${init.checkpoint}`` reads the file's ``init`` node);
    a key whose value refers outside the file (``budget_tag: q${method.quality}`` resolves, a reference to
    another group would not) is left out: it is Hydra's, not an option.
    """
    path = METHOD_CONFIG_DIR / f"{method}.yaml"
    cfg = OmegaConf.load(path)
    section = cfg.get(node)
    if section is None:
        return {}
    out: dict[str, Any] = {}
    for key in section:
        try:
            value = section[key]  # resolves an interpolation against the whole file
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
            out[str(key)] = value
        except OmegaConfBaseException:  # an interpolation into another config group: Hydra's business
            continue
    return out


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` on top of ``base``; mappings merge key by key (a partial ``lr`` node keeps the rest)."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        return {**base, **{k: deep_merge(base.get(k), v) for k, v in override.items()}}
    return override


@dataclass(frozen=True)
class Options:
    """Base of the option dataclasses: subclasses set ``method`` (the YAML file), ``node`` and ``choices``.

    ``choices`` maps a key to its valid values (checked after conversion); :meth:`check` adds the checks
    that involve several keys or ranges.
    """

    method: ClassVar[str] = ""
    node: ClassVar[str] = "method"
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}

    @classmethod
    def from_mapping(cls: type[T], cfg: Mapping[str, Any] | None = None) -> T:
        """The options of ``cfg`` on top of the YAML defaults, converted and checked."""
        given = {str(k): v for k, v in dict(cfg or {}).items() if k not in HYDRA_KEYS}
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(given) - set(known))
        if unknown:
            label = cls.method if cls.node == "method" else f"{cls.method} {cls.node}"
            raise ConfigError(f"unknown {label} option(s) {unknown}; valid: {', '.join(known)}")
        defaults = cls.defaults()
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key in known:
            if key in given:
                value = deep_merge(defaults.get(key), given[key])
            elif key in defaults:
                value = defaults[key]
            else:  # a field the YAML does not spell out: the dataclass and the YAML disagree
                raise ConfigError(f"{cls.node}.{key} has no default in configs/method/{cls.method}.yaml")
            values[key] = cls.convert(key, hints[key], value)
        options = cls(**values)
        options.check()
        return options

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The YAML node this dataclass reads its defaults from."""
        return yaml_defaults(cls.method, cls.node)

    @classmethod
    def convert(cls, key: str, kind: Any, value: Any) -> Any:
        """``value`` as the field's type ``kind``; raises :class:`ConfigError` naming ``node.key``."""
        name = f"{cls.node}.{key}"
        out = convert_value(name, kind, value)
        valid = cls.choices.get(key)
        if valid is not None and out not in valid:
            shown = ", ".join(str(v).lower() if isinstance(v, bool) else str(v) for v in valid)
            raise ConfigError(f"{name} must be one of {shown}, got {value!r}")
        return out

    def check(self) -> None:
        """Checks across keys and ranges (none by default); raise :class:`ConfigError` with the key."""

    def require(self, ok: bool, message: str) -> None:
        """Raise :class:`ConfigError` with ``message`` unless ``ok``."""
        if not ok:
            raise ConfigError(message)

    def require_range(self, key: str, lo: float, hi: float | None = None) -> None:
        """Raise :class:`ConfigError` unless ``lo <= key <= hi`` (``hi`` None: no bound); None passes."""
        value = getattr(self, key)
        if value is None or (lo <= value and (hi is None or value <= hi)):
            return
        valid = f"in {lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{self.node}.{key} must be {valid}, got {value!r}")


def convert_value(name: str, kind: Any, value: Any) -> Any:
    """Convert ``value`` to ``kind`` (bool, int, float, str, ``X | None``, ``tuple[...]``, ``dict``)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:
            try:
                return convert_value(name, option, value)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{name}: invalid value {value!r}")
    origin = typing.get_origin(kind) or kind
    if origin is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if origin is int:
        try:
            ok = not isinstance(value, bool) and float(value) == int(float(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return int(float(value)) if isinstance(value, str) else int(value)
    if origin is float:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if origin is str:
        if isinstance(value, (Mapping, list, tuple)) or value is None:
            raise ConfigError(f"{name} must be a string, got {value!r}")
        return str(value)
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(
            v if item is Any else convert_value(f"{name}[{i}]", item, v)
            for i, v in enumerate(value)
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be a mapping, got {value!r}")
        return dict(value)
    if kind is Any:
        return value
    raise TypeError(f"{name}: unsupported option type {kind!r}")
