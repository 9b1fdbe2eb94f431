"""Atomic checkpoints: written to a temporary name in the same folder, then renamed, so a crash
at any moment leaves either the previous checkpoint or the new one, never a torn file. Loading
uses ``torch.load(weights_only=True)``: a checkpoint cannot execute code."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from gnnrec.common.atomic_files import atomic_path


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """The named state in ``path`` (tensors on the CPU; ``mmap``: mapped, not read, which checks
    the file's structure cheaply). A truncated, empty or foreign file is a ``ValueError`` that
    names it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as err:  # torch/pickle/zip internals: say which file and what to do
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ValueError(
            f"{path}: not a readable gnnrec checkpoint ({reason}); restore it, or remove it "
            "to start over"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a gnnrec checkpoint (it holds a {type(state).__name__})")
    return state


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
