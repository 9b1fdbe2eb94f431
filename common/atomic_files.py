"""Files and folders written whole or not at all.

Everything gnnrec writes to disk (checkpoints, caches, shards, metrics, recommendations, graph
stores) goes through here: the content is written under a temporary name in the same folder,
flushed, and renamed over the target, so a crash at any moment leaves the previous version or
the new one, never a torn file. Temporary names are created with the process umask (not the
0600 of ``mkstemp``), so a finished file has the permissions of any other file the user writes.
Standard library only, so the numpy-only out-of-core build can use it in a process too small for
torch.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write to (a name ending in ``.tmp``: pass an
    open file to writers that add suffixes, such as ``np.save``); on a clean exit the file is
    synced and renamed to ``path``, on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_sibling(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """``data`` as JSON; NaN and infinities are refused (they are not JSON)."""
    return write_text_atomic(path, json.dumps(data, indent=indent, allow_nan=False))


@contextmanager
def staged_folder(folder: str | Path) -> Iterator[Path]:
    """Yields a temporary sibling folder to write into; on a clean exit it replaces ``folder``
    by a rename, on an error it is removed. A crash leaves the previous folder or none."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
