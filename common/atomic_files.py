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

import errno
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _make_folder(folder: Path) -> list[Path]:
    """Creates ``folder`` and its missing parents; returns the ones it created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir(exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (someone else's file landed there), or gone


def _no_space_left(err: BaseException, folder: Path) -> bool:
    """Whether ``err`` is a write that failed because ``folder``'s file system is full: ENOSPC,
    or torch's and numpy's own words for it ("enforce fail at inline_container.cc", "19200
    requested and 14304 written") on a file system with less than 1 MiB left."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    text = str(err)
    if not any(w in text for w in ("inline_container", "requested and", "failed writing")):
        return False
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < 1 << 20


def _as_seen_by_user(err: BaseException, tmp: Path, target: Path) -> BaseException | None:
    """The error to raise instead of ``err``, naming ``target`` where it names the temporary
    ``tmp`` or where the disk was full; None to raise ``err`` as it is."""
    if _no_space_left(err, target.parent):
        return OSError(errno.ENOSPC, "no space left on device", str(target))
    if isinstance(err, OSError) and err.filename is not None and str(tmp) in str(err.filename):
        return type(err)(err.errno, err.strerror, str(err.filename).replace(str(tmp), str(target)))
    return None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` to write to (a name ending in ``.tmp``: pass an
    open file to writers that add suffixes, such as ``np.save``); on a clean exit the file is
    synced and renamed to ``path``, on an error it is removed with any folder made for it, and
    the error names ``path`` (a full disk: ``OSError`` ENOSPC, "no space left on device")."""
    path = Path(path)
    made = _make_folder(path.parent)
    tmp = _temporary_sibling(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        seen = _as_seen_by_user(err, tmp, path)  # while the partial file still holds the disk
        tmp.unlink(missing_ok=True)
        _remove_empty(made)
        if seen is None:
            raise
        raise seen from None


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 2) -> Path:
    """``data`` as JSON; NaN and infinities are refused (they are not JSON)."""
    return write_text_atomic(path, json.dumps(data, indent=indent, allow_nan=False))


def read_json(path: str | Path) -> Any:
    """The JSON in the file ``path``; ``ValueError`` naming it when it is not JSON (a
    damaged or foreign file)."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); restore it, or retrain") from None


OUTPUT_MARKER = ".gnnrec-output.json"
"""The file in every folder written through :func:`staged_folder`: the kind of output and the
names written at its top level. Only a folder holding this marker with the same kind, and no
name beside those, is ever replaced."""


def check_replaceable(folder: str | Path, kind: str) -> None:
    """``ValueError`` naming ``folder`` unless writing the output ``kind`` there deletes nothing
    but a previous output of the same kind: it is missing, an empty folder, or a folder holding
    this module's marker for ``kind`` and nothing the marker does not name (a run directory made
    inside an old export is kept). The current folder and its ancestors are refused whatever
    they hold."""
    folder = Path(folder)
    resolved = folder.resolve()
    if resolved == Path.cwd().resolve() or resolved in Path.cwd().resolve().parents:
        raise ValueError(
            f"{folder}: refusing to replace the current folder or one above it; give a new "
            f"folder for the {kind}"
        )
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink():
        raise ValueError(
            f"{folder}: a symbolic link (to {os.readlink(folder)}); give a new folder for the "
            f"{kind}, not a link to one"
        )
    if not folder.is_dir():
        raise ValueError(f"{folder}: exists and is not a folder; give a new folder for the {kind}")
    if not any(folder.iterdir()):
        return
    written = _marker_of(folder)
    if written.get("kind") != kind:
        other = written.get("kind")
        article = "an" if other and other[0] in "aeiou" else "a"
        what = f"{article} {other} (not {kind})" if other else "files gnnrec did not write"
        raise ValueError(
            f"{folder}: not empty and holds {what}, so replacing it would delete them; give a "
            f"new or empty folder for the {kind}, or remove this one yourself"
        )
    left = {p.name for p in folder.iterdir() if not _is_temporary(p)}  # crashes leave these
    foreign = sorted(left - set(written["entries"]))
    if foreign:
        raise ValueError(
            f"{folder}: holds {', '.join(foreign[:5])}, which the {kind} written there did not "
            "write, so replacing it would delete them; give a new folder, or move them out"
        )


def _marker_of(folder: Path) -> dict:
    """The marker's content (``kind`` and the top-level ``entries`` written), ``{}`` when there
    is none or it is not one."""
    try:
        marker = json.loads((folder / OUTPUT_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    valid = isinstance(marker, dict) and isinstance(marker.get("kind"), str)
    valid = valid and isinstance(marker.get("entries"), list)
    return marker if valid else {}


def claim_folder(folder: str | Path, kind: str, entries: list[str]) -> Path:
    """A folder that the output ``kind`` fills in place over several runs (resumable shards):
    created with the marker naming its top-level ``entries``, or taken over when it is empty or
    already holds that output (:func:`check_replaceable`); anything else is refused."""
    folder = Path(folder)
    check_replaceable(folder, kind)
    folder.mkdir(parents=True, exist_ok=True)
    if _marker_of(folder).get("kind") != kind:
        names = sorted({*entries, OUTPUT_MARKER})
        write_json_atomic(folder / OUTPUT_MARKER, {"kind": kind, "entries": names})
    return folder


@contextmanager
def staged_folder(folder: str | Path, kind: str) -> Iterator[Path]:
    """Yields a temporary sibling folder to write the output ``kind`` into (``"export"``,
    ``"graph store"``, ...); on a clean exit it replaces ``folder`` by a rename, on an error it
    is removed. Nothing but a previous output of the same kind is ever replaced
    (:func:`check_replaceable`, checked on entry and again before the swap). A crash leaves the
    previous folder or the new one (or, between the two renames, the previous one under a
    hidden sibling name). The folder gets the umask's mode, as any folder the user makes."""
    folder = Path(folder)
    check_replaceable(folder, kind)
    made = _make_folder(folder.parent)
    tmp = _temporary_sibling(folder)
    tmp.mkdir()
    try:
        yield tmp
        entries = sorted([p.name for p in tmp.iterdir()] + [OUTPUT_MARKER])
        write_json_atomic(tmp / OUTPUT_MARKER, {"kind": kind, "entries": entries})
        check_replaceable(folder, kind)
        previous = _temporary_sibling(folder)
        if folder.exists():
            os.replace(folder, previous)
        os.replace(tmp, folder)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException as err:
        seen = _as_seen_by_user(err, tmp, folder)  # while the partial files still hold the disk
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        if seen is None:
            raise
        raise seen from None
