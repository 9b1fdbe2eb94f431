"""Atomic checkpoints: written to a temporary name in the same folder, then renamed, so a crash
at any moment leaves either the previous checkpoint or the new one, never a torn file. Loading
uses ``torch.load(weights_only=True)``: a checkpoint cannot execute code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


class CheckpointStore(Protocol):
    """Where the trainer keeps its resumable state: ``load`` the latest (or None), ``save`` a
    new one with the epoch's metrics."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any], metrics: dict[str, float]) -> None: ...


class LocalCheckpoints:
    """One atomic file, ``path``, replaced at every save."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        return load_checkpoint(self.path) if self.path.exists() else None

    def save(self, state: dict[str, Any], metrics: dict[str, float]) -> None:
        save_checkpoint(state, self.path)
