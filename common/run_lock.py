"""One writer per run directory: a second ``gnnrec`` process that would write into a run
directory already in use stops at once, before loading anything, instead of silently replacing
the other's config, model and metrics. Advisory ``flock`` on ``<run_dir>/.gnnrec.lock``, released
when the process ends (also when it is killed), so no stale lock is left behind."""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".gnnrec.lock"


def is_run_dir(folder: str | Path) -> bool:
    """Whether ``folder`` is a gnnrec run directory (it has the lock file every run takes)."""
    return (Path(folder) / LOCK_FILE).is_file()


def remove_run_dir(folder: str | Path) -> None:
    """Removes an earlier run directory (benchmarks start fresh runs); ``ValueError`` for a
    folder that is no gnnrec run, which is never removed."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not is_run_dir(folder):
        raise ValueError(f"{folder}: exists and is no gnnrec run directory; give another folder")
    shutil.rmtree(folder)


def lock_purpose(run_dir: str | Path) -> str:
    """What the process holding (or that last held) ``run_dir``'s lock said it does ("" when
    nothing was said, e.g. ``train``)."""
    try:
        words = (Path(run_dir) / LOCK_FILE).read_text(errors="replace").split()
    except OSError:
        return ""
    return " ".join(words[1:])


@contextmanager
def run_dir_lock(run_dir: str | Path, create: bool = True, purpose: str = "") -> Iterator[bool]:
    """Holds ``run_dir``'s lock (creating the folder when ``create``, else requiring it) and
    yields whether this call created the folder: only its creator may remove it, and only while
    holding the lock (a process that lost the race for a fresh folder never deletes the
    winner's run). ``ValueError`` naming the folder when it is missing, not writable or held by
    another process. The lock file holds the holder's pid and ``purpose`` (see
    :func:`lock_purpose`)."""
    run_dir = Path(run_dir)
    if not create and not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run directory (train the run first)")
    if not create and not (is_run_dir(run_dir) or (run_dir / "config.toml").is_file()):
        raise ValueError(f"{run_dir}: a folder, but no gnnrec run directory (train the run first)")
    created = False
    try:
        if create and not run_dir.is_dir():
            try:
                run_dir.mkdir(parents=True)
                created = True
            except FileExistsError:
                pass  # another process made it first, or it is a file (os.open says which)
        fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except PermissionError:
        raise ValueError(f"{run_dir}: the run directory is not writable") from None
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{run_dir}: exists and is not a folder") from None
    except FileNotFoundError:
        raise ValueError(f"{run_dir}: removed by another process while opening it") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ValueError(
                f"{run_dir} is in use by another gnnrec process (pid {holder}): wait for it "
                "to finish, or choose another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {purpose}".strip().encode(), 0)
        yield created
    finally:
        os.close(fd)  # releases the lock
