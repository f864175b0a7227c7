"""Typed configs that load from YAML: a dataclass per stage, unknown or mistyped keys fail with the
file and key named, nested dataclasses for small groups, command-line overrides on top.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from distill.errors import ConfigError
from distill.records import matches_type, type_name

C = TypeVar("C")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file (and line, for syntax errors)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    return data


def from_mapping(cls: type[C], data: Mapping[str, Any], where: str) -> C:
    """Build dataclass `cls` from a mapping; `where` (a file name) starts every error message.

    >>> @dataclasses.dataclass
    ... class Demo:
    ...     n: int = 1
    >>> from_mapping(Demo, {"n": 3}, "demo.yaml").n
    3
    >>> @dataclasses.dataclass
    ... class Rate:
    ...     lr: float = 1.0
    >>> from_mapping(Rate, yaml.safe_load("lr: 2e-3"), "rate.yaml").lr
    0.002
    >>> from_mapping(Demo, {"m": 3}, "demo.yaml")
    Traceback (most recent call last):
    ...
    distill.errors.ConfigError: demo.yaml: unknown key 'm' (known: n)
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(fields)})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            values[key] = from_mapping(tp, value, f"{where}: {key}")
            continue
        if isinstance(value, int) and not isinstance(value, bool) and matches_type(0.5, tp) and not matches_type(1, tp):
            value = float(value)
        if isinstance(value, str) and matches_type(0.5, tp) and not matches_type("", tp):
            # YAML 1.1 reads `2e-3` (no dot) as a string; take it as the number the user meant.
            try:
                value = float(value)
            except ValueError:
                pass
        if not matches_type(value, tp):
            raise ConfigError(f"{where}: key {key!r}: expected {type_name(tp)}, got {type(value).__name__} ({value!r})")
        values[key] = value
    missing = [
        name for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}")
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:  # __post_init__ validation
        raise ConfigError(f"{where}: {err}") from err


def apply_settings(data: dict[str, Any], settings: list[str] | None) -> dict[str, Any]:
    """Apply `--set GROUP.KEY=VALUE` assignments (values read as YAML) to a config mapping, in place.

    >>> apply_settings({"grpo": {"beta": 0.001}}, ["grpo.beta=0.04", "grpo.benches=[math500]"])
    {'grpo': {'beta': 0.04, 'benches': ['math500']}}
    >>> apply_settings({"grpo": 1}, ["grpo.beta=0.04"])
    Traceback (most recent call last):
    ...
    distill.errors.ConfigError: --set grpo.beta=0.04: 'grpo' is not a group
    """
    for text in settings or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {text}: expected GROUP.KEY=VALUE")
        *groups, last = key.strip().split(".")
        node = data
        for group in groups:
            child = node.setdefault(group, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: {group!r} is not a group")
            node = child
        try:
            node[last] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {text}: the value is not valid YAML") from err
    return data


def load_config(cls: type[C], path: str | Path | None, settings: list[str] | None = None, where: str | None = None) -> C:
    """The one loader: dataclass `cls` from a YAML file (or its defaults when `path` is None), with
    `GROUP.KEY=VALUE` settings (from `--set`, or a recipe's `set:` list) applied on top."""
    data = read_yaml(path) if path is not None else {}
    return from_mapping(cls, apply_settings(data, settings), where or (str(path) if path is not None else cls.__name__))


def with_settings(config: C, settings: list[str] | None, where: str = "<config>") -> C:
    """A copy of a loaded config with `GROUP.KEY=VALUE` settings applied and checked like a file's keys.

    >>> @dataclasses.dataclass
    ... class Demo:
    ...     n: int = 1
    >>> with_settings(Demo(), ["n=3"]).n
    3
    """
    if not settings:
        return config
    return from_mapping(type(config), apply_settings(dataclasses.asdict(config), settings), where)  # type: ignore[arg-type]
