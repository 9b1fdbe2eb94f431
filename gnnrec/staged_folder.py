"""Folders written whole or not at all: the contents go into a temporary sibling, which replaces
the target by a rename once everything is written; on an error it is removed. A crash leaves the
previous folder or none, never a half-written one. Standard library only, so the numpy-only
out-of-core build can use it in a process too small for torch."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(folder: str | Path) -> Iterator[Path]:
    """Yields the temporary folder to write into; on a clean exit it becomes ``folder``."""
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
