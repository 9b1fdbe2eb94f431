"""Atomic, checksummed checkpoints: written to a temporary name in the same folder, then
renamed, so a crash at any moment leaves either the previous checkpoint or the new one, never a
torn file; a sha256 of every tensor and value is stored inside and checked on loading, so a
damaged file (a flipped bit in tensor data loads without complaint in torch) is an error, not a
silently different model. Loading uses ``torch.load(weights_only=True)``: a checkpoint cannot
execute code."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import torch

from gnnrec.common.atomic_files import atomic_path

DIGEST = "sha256"  # the key of the checksum inside a saved state


def _digest(value: Any, h: Any = None) -> Any:
    """sha256 over a nested state: keys in sorted order, tensors by dtype, shape and bytes."""
    h = h or hashlib.sha256()
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        h.update(b"D")
        for key in sorted(value, key=repr):
            h.update(repr(key).encode())
            _digest(value[key], h)
    elif isinstance(value, list | tuple):
        h.update(b"L")
        for item in value:
            _digest(item, h)
    else:
        h.update(repr(value).encode())
    return h


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save({**state, DIGEST: _digest(state).hexdigest()}, tmp)
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
    expected = state.pop(DIGEST, None)
    if expected is not None and _digest(state).hexdigest() != expected:
        raise ValueError(
            f"{path}: damaged (its contents do not match the checksum saved with them); "
            "restore it, or remove it to start over"
        )
    return state


TABLE_SHARDS = "table_shards"  # a loaded state's list of every rank's table shard, by rank


class CheckpointStore(Protocol):
    """Where the trainer keeps its resumable state: ``load`` the latest (or None), ``save`` a
    new one with the epoch's metrics. ``shard``: this rank's sharded ID tables (``{"rank",
    "world", "tables"}``), saved by every rank; a loaded state lists them all under
    :data:`TABLE_SHARDS`."""

    def load(self) -> dict[str, Any] | None: ...

    def save(
        self, state: dict[str, Any], metrics: dict[str, float], shard: dict | None = None
    ) -> None: ...


class LocalCheckpoints:
    """One atomic file, ``path``, replaced at every save (one process: its table shard inside)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        return load_checkpoint(self.path) if self.path.exists() else None

    def save(
        self, state: dict[str, Any], metrics: dict[str, float], shard: dict | None = None
    ) -> None:
        if shard is not None:
            if shard["world"] != 1:
                raise ValueError(f"{self.path}: one file holds the tables of one process only")
            state = {**state, TABLE_SHARDS: [shard]}
        save_checkpoint(state, self.path)
