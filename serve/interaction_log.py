"""The service's durable interaction log: ``<run_dir>/interactions.jsonl``, one JSON object a
line, ``{"user": "u1", "items": ["i3", "i9"], "time": 1764806400.0}``.

:meth:`InteractionLog.append` returns only after its line is on disk (one ``write`` on an
``O_APPEND`` descriptor, then ``fsync``), under an exclusive ``flock`` so that the replicas of a
service append whole lines to the same file; a service acknowledges an interaction after that.
:meth:`InteractionLog.read_new` returns the records appended since its last call, by byte
offset: each replica folds in what any replica recorded, and a restarted service replays the
whole log. A process killed mid-write leaves a torn last line, never acknowledged: the next
writer cuts it off before appending, and readers wait for a line's newline.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOG_FILE = "interactions.jsonl"


@dataclass(frozen=True)
class Recorded:
    """One logged interaction: ``user`` with ``items`` at Unix ``time``; ``line`` in the file."""

    user: str
    items: list[str]
    time: float
    line: int


class InteractionLog:
    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / LOG_FILE
        self._offset = 0  # bytes read so far
        self._lines = 0  # whole lines read so far

    @contextmanager
    def _locked(self) -> Iterator[int]:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def append(self, user: str, items: list[str]) -> float:
        """Writes one record and returns its time once it is on disk (``fsync``)."""
        record = {"user": user, "items": items, "time": round(time.time(), 6)}
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._locked() as fd:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn line: never acknowledged
                tail = _last_newline(fd, size)
                os.ftruncate(fd, tail)
                size = tail
            os.write(fd, line)
            os.fsync(fd)
        return record["time"]

    def read_new(self) -> list[Recorded]:
        """The whole lines appended since the last call (all of them on the first); a line that
        is not a record is a ``ValueError`` naming the file and line."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # a torn last line waits for its newline
        records = []
        for raw in chunk[:end].splitlines():
            self._lines += 1
            records.append(_parse(raw, self.path, self._lines))
        self._offset += end
        return records


def _last_newline(fd: int, size: int) -> int:
    """The length of the file's whole lines (after its last newline; 0 when none)."""
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        data = os.pread(fd, end - start, start)
        at = data.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _parse(raw: bytes, path: Path, line: int) -> Recorded:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}, line {line}: not a JSON record ({err})") from None
    ok = (
        isinstance(value, dict)
        and isinstance(value.get("user"), str)
        and isinstance(value.get("items"), list)
        and all(isinstance(i, str) for i in value["items"])
        and isinstance(value.get("time"), int | float)
    )
    if not ok:
        raise ValueError(
            f"{path}, line {line}: a record needs user (string), items (strings) and time "
            f"(number), got {raw[:200].decode(errors='replace')}"
        )
    return Recorded(value["user"], value["items"], float(value["time"]), line)
