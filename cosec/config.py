"""Typed configuration: params.yaml parsed once into dataclasses.

Unknown keys, wrong types, non-finite numbers and values out of their declared range fail with
one line naming the file, the key and what is expected, so a typo in params.yaml never silently
falls back to a default. A field declares its range with ``Annotated[int, Range(ge=1)]``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A params file that does not fit the expected configuration."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: ``Annotated[int, Range(ge=1)]`` (bounds are inclusive unless gt/lt)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None

    def check(self, value: Any, where: str) -> None:
        if value is None:
            return
        for bound, ok, text in (
            (self.ge, lambda b: value >= b, ">="),
            (self.gt, lambda b: value > b, ">"),
            (self.le, lambda b: value <= b, "<="),
        ):
            if bound is not None and not ok(bound):
                raise ConfigError(f"{where}: must be {text} {bound:g}, got {value!r}")


def _check_items(value: Any, meta: tuple, where: str) -> None:
    for m in meta:
        if isinstance(m, Range):
            items = value if isinstance(value, (list, tuple)) else [value]
            for i, v in enumerate(items):
                m.check(
                    v, where if len(items) == 1 and not isinstance(value, (list, tuple)) else f"{where}[{i}]"
                )


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is typing.Annotated:
        converted = _convert(value, args[0], where)
        _check_items(converted, args[1:], where)
        return converted
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: cannot be {value!r}")
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {k: _convert(v, args[1] if args else Any, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if annotation in (int, float, str, bool) and not (
        isinstance(value, annotation) and not (annotation is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, where: str = "params") -> T:
    """Build dataclass `cls` from a mapping, recursively, rejecting unknown keys."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    kwargs = {name: _convert(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # a required field is missing, or __post_init__ refused a value
        raise ConfigError(f"{where}: {err}") from err


def to_dict(obj: Any) -> dict:
    """A dataclass as plain data (for logging the parameters of a run)."""
    return dataclasses.asdict(obj)


def read_yaml(path: str | Path) -> dict:
    """The params document as a mapping; a missing or malformed file is a ConfigError naming it."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: params file not found") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from err
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(document).__name__}")
    return document


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Parse `section` (dotted) of the YAML file at `path` into `cls` (a missing section gives the defaults)."""
    data = read_yaml(path)
    for part in section.split("."):
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: {section!r} is not a mapping")
        data = data.get(part, {})
    if data is None:
        data = {}
    return from_dict(cls, data, where=f"{path}:{section}")
