"""Checks of the Python API's arguments, type and value, with the parameter's own name in the
message (``TypeError`` for a wrong type, ``ValueError`` for a wrong value)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def path_argument(value: object, name: str) -> Path:
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")
    if not str(value).strip():
        raise ValueError(f"{name} must name a file or folder, got {str(value)!r}")
    return Path(value)


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def flag_argument(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def id_list(values: object, name: str) -> list[str] | None:
    """A list of ids (strings, or integers written as the data writes them)."""
    if values is None:
        return None
    if not isinstance(values, list | tuple | set | frozenset | np.ndarray):
        raise TypeError(
            f"{name} must be a list of ids, got {type(values).__name__} {values!r} (for one "
            f"user: {name}=[{values!r}])"
        )
    ids = list(values)
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
            raise TypeError(f"{name} holds {type(value).__name__} {value!r}; ids are str or int")
    return [str(value) for value in ids]


def check_text(value: object, name: str) -> str:
    """A non-blank string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{name} is empty: describe the new user in a few words")
    return value
