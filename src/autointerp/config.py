"""Strict dataclass configs: unknown keys are rejected with the list of valid ones."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def _strip_optional(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def parse_config(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys.

    ``where`` names the place in the configuration (for example
    ``"conf/base/parameters_cache.yml: cache"``) so that error messages point at it.
    """
    if data is None:
        data = {}
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: expected a mapping of keys for {cls.__name__}, got {type(data).__name__} {data!r}."
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), list(fields), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"{where}: unknown key '{k}'.{hint} Valid keys: {', '.join(sorted(fields))}.")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        tp = _strip_optional(hints.get(name, Any))
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = parse_config(tp, value, f"{where}.{name}")
        elif typing.get_origin(tp) is list and value is not None:
            (inner,) = typing.get_args(tp) or (Any,)
            inner = _strip_optional(inner)
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{where}.{name}: expected a list, got {value!r}.")
            if dataclasses.is_dataclass(inner):
                value = [parse_config(inner, v, f"{where}.{name}[{i}]") for i, v in enumerate(value)]
            else:
                value = list(value)
        elif tp in (int, float) and value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}.{name}: expected a number, got {value!r}.")
            if tp is int and float(value) != int(value):
                raise ConfigError(f"{where}.{name}: expected a whole number, got {value!r}.")
            value = tp(value)
        elif tp is bool and value is not None and not isinstance(value, bool):
            raise ConfigError(f"{where}.{name}: expected true or false, got {value!r}.")
        elif tp is str and value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}.{name}: expected a string, got {value!r}.")
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a required key is missing
        raise ConfigError(f"{where}: {e}") from None
    check = getattr(obj, "validate", None)
    if callable(check):
        check(where)
    return obj


def as_dict(obj: Any) -> dict:
    """A dataclass config as a plain dict (for logging and fingerprints)."""
    return dataclasses.asdict(obj)
