"""Configuration values checked against the dataclass field types they fill, before anything
runs: ``train.batch_size = true`` or ``train.epochs = 1.5`` is an error that names the key, not
a batch size of 1 or a crash minutes later."""

from __future__ import annotations

import typing
from typing import Any

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )
    shown = str(value).lower() if isinstance(value, bool) else repr(value)  # TOML's spelling
    return f"{shown} ({kind})"


def check_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` as field type ``hint`` wants it (an integer where a float is wanted becomes a
    float); ``ValueError`` naming ``key`` when it is of another type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (bool, int, str):
        ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"{key} must be {_NAMES[hint]}, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {_describe(value)}")
        return float(value)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{key} must be a list, got {_describe(value)}")
        return (
            [check_value(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)] if args else value
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a table, got {_describe(value)}")
        return value
    return value


def checked_fields(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` for the dataclass ``cls`` with every known field's type checked (``where``:
    the section, e.g. ``train``); unknown keys are left for the caller to report."""
    hints = typing.get_type_hints(cls)
    return {
        name: check_value(value, hints[name], f"{where}.{name}" if where else name)
        if name in hints
        else value
        for name, value in values.items()
    }
