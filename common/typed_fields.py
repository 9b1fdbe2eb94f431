"""Configuration values checked against the dataclass field types they fill, before anything
runs: ``train.batch_size = true``, ``train.epochs = 1.5`` or ``train.mode = "sample"`` is an
error that names the key (and, for a misspelt choice or key, what was probably meant), not a
batch size of 1 or a crash minutes later. An enumerated field is typed ``Literal[...]``: its
choices are checked here and listed by :func:`choices_of`."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import re
import types
import typing
from typing import Any, Literal

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
    if origin is Literal:
        if isinstance(value, bool) or value not in args:
            raise ValueError(
                f"{key} must be one of {args}, got {_describe(value)}{_guess(value, args)}"
            )
        return value
    if hint in (bool, int, str):
        ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
        if not ok:
            raise ValueError(f"{key} must be {_NAMES[hint]}, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {_describe(value)}")
        if not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value}")
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


def _guess(value: Any, known: typing.Iterable[Any]) -> str:
    """``"; did you mean 'x'?"`` for a string close to one of ``known``, else ``""``."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_keys(given: typing.Iterable[str], known: typing.Iterable[str], where: str) -> str:
    """The message for keys of a section that no field has, each with its likely meaning."""
    known = sorted(known)
    named = ", ".join(f"{k!r}{_guess(k, known)}" for k in sorted(given))
    return f"{where or 'config'}: unknown key(s) {named}; known: {known}"


def choices_of(cls: type) -> dict[str, tuple]:
    """Every ``Literal`` field of the dataclass ``cls`` with its choices."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: typing.get_args(hints[f.name])
        for f in dataclasses.fields(cls)
        if typing.get_origin(hints.get(f.name)) is Literal
    }


def check_fields(config: Any) -> None:
    """``ValueError`` naming the field for a choice that is not one of its ``Literal`` choices,
    and for any number field of the dataclass ``config`` (``int``, ``float``, lists of them)
    holding NaN, an infinity, a boolean or a non-number: the one check every configuration
    dataclass runs first in ``__post_init__``, however it was built (a TOML file, ``--set``, a
    CLI flag, Python, or a loaded config changed in place)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        hint = _unless_none(hints.get(f.name), getattr(config, f.name))
        if typing.get_origin(hint) is Literal:
            check_value(getattr(config, f.name), hint, f.name)
        elif hint in (int, float):
            _check_number(getattr(config, f.name), hint, f.name)
        elif typing.get_origin(hint) is list and typing.get_args(hint)[:1] in ((int,), (float,)):
            for i, v in enumerate(getattr(config, f.name)):
                _check_number(v, typing.get_args(hint)[0], f"{f.name}[{i}]")


def _unless_none(hint: Any, value: Any) -> Any:
    """``X`` for a field typed ``X | None`` that holds a value (``None`` is then not checked
    further), else ``hint``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return None if value is None else rest[0]
    return hint


def _check_number(value: Any, hint: type, name: str) -> None:
    wanted = int if hint is int else int | float
    if isinstance(value, bool) or not isinstance(value, wanted):
        raise ValueError(f"{name} must be {_NAMES[hint]}, got {_describe(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")


_FIELD_LINE = re.compile(r"^    (\w+): [^=]+(?:=.*)?$")


def field_docs(cls: type) -> dict[str, str]:
    """Each field of the dataclass ``cls`` with its documentation: the comment lines right
    above it and the comment at its line's end (in these classes the source comments are the
    per-field documentation)."""
    docs, pending = {}, []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# ").strip())
            continue
        match = _FIELD_LINE.match(line.split("  # ")[0])
        if match and not stripped.startswith(("def ", "@", "RESUMABLE")):
            trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
            docs[match.group(1)] = " ".join([*pending, trailing]).strip()
        pending = []
    return {f.name: docs.get(f.name, "") for f in dataclasses.fields(cls)}
