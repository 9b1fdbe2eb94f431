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
from gnnrec.common.log import get_logger

DIGEST = "sha256"  # the key of the checksum inside a saved state
PROVENANCE = "provenance"  # the key of what produced a checkpoint (gnnrec.provenance)

log = get_logger(__name__)


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


def state_digest(state: dict[str, Any]) -> str:
    """The sha256 (hex) of a state dict, as stored in its checkpoint."""
    return _digest(state).hexdigest()


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
        if "weights_only" in str(err) or "Weights only load failed" in str(err):
            # never pass on torch's advice to unpickle it: that runs code from the file
            reason = "it holds Python objects besides tensors and plain values"
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


def differences(saved: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What differs between two provenances, in words (empty when they agree); a fingerprint
    that ``expected`` gives as ``None`` is not compared (no text model, or data allowed to
    change)."""
    found = []
    if saved.get("model") != expected["model"]:
        found.append(f"model {saved.get('model')} != {expected['model']}")
    if expected.get("data_sha256") and saved.get("data_sha256") != expected["data_sha256"]:
        found.append("other data (interactions, ids or split)")
    if expected.get("text_sha256") and saved.get("text_sha256") != expected["text_sha256"]:
        found.append("other user or item text")
    old, new = saved.get("settings", {}), expected["settings"]
    for key in sorted(set(old) | set(new)):
        if key.split(".")[0] == "model" and saved.get("model") != expected["model"]:
            continue  # named above
        if old.get(key) != new.get(key):
            found.append(f"{key} {old.get(key)!r} != {new.get(key)!r}")
    return found


def check_provenance(state: dict[str, Any], expected: dict[str, Any], path: str | Path) -> None:
    """``ValueError`` naming ``path`` and what differs when the artifact ``state`` (a loaded
    checkpoint or ``export.json``) was produced by another run than ``expected`` describes. An
    artifact written before provenance was recorded is accepted with a warning."""
    saved = state.get(PROVENANCE)
    if saved is None:
        log.warning("%s records no provenance (written by an older gnnrec); trusting it", path)
        return
    found = differences(saved, expected)
    if found:
        shown = "; ".join(found[:4]) + (f"; and {len(found) - 4} more" if len(found) > 4 else "")
        raise ValueError(
            f"{path} belongs to another run ({shown}): restore this run's own file, or train "
            "anew in a new --run-dir"
        )


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
