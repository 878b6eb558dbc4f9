"""Typed values: a YAML or `key=value` command-line value as the type of the dataclass field it sets.

One converter for every key: the run config (auxrnn.train.config) and the datasets' options (auxrnn.data) both
use `coerce`. Knows nothing of either; standard library and yaml only, so every layer may import it.
"""
from __future__ import annotations

import types
import typing
from typing import Any

import yaml


def type_name(hint) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def coerce(key: str, value: Any, hint) -> Any:
    """Return `value` as the field type `hint`, or raise ValueError naming key, value and the type."""
    def bad(extra: str = ""):
        raise ValueError(f"{key}={value!r} has the wrong type: expected {type_name(hint)}{extra}")

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none")):
            if type(None) in members:
                return None
        for m in members:  # exact match first: 300 stays an int, "full" stays a str
            if m is not type(None) and m in (int, float, str, bool) and type(value) is m:
                return value
        for m in members:
            if m is type(None):
                continue
            try:
                return coerce(key, value, m)
            except ValueError:
                pass
        bad()
    if origin is tuple:
        args = typing.get_args(hint)
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            bad(" (a list)")
        item = args[0] if args else Any
        return tuple(coerce(key, v, item) if item is not Any else v for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            bad(" (a mapping)")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        bad(" (true or false)")
    if hint is int:
        if isinstance(value, bool):
            bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                bad()
            if f.is_integer():
                return int(f)
        bad()
    if hint is float:
        if isinstance(value, bool):
            bad()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                bad()
        bad()
    if hint is str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            bad()
        return str(value)
    return value


def parse_value(text: str) -> Any:
    """A command-line value as YAML: `300` -> 300, `1e-3` -> '1e-3' (made a float by the field type)."""
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["model.truncate=300", "optim.lr=1e-3"] -> {"model.truncate": 300, "optim.lr": "1e-3"}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. model.truncate=300)")
        out[key.strip()] = parse_value(text.strip())
    return out
