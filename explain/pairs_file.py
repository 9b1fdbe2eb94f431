"""The ``gnnrec explain --pairs`` file: a CSV with a header naming a user column (``user`` or
``user_id``) and an item column (``item`` or ``item_id``), one pair a line; and where its
explanations may be written."""

from __future__ import annotations

import csv
from pathlib import Path

USER_COLUMNS, ITEM_COLUMNS = ("user", "user_id"), ("item", "item_id")


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The ``(user, item)`` pairs of ``path``; ``ValueError`` naming the file and line of
    anything else (no header, a missing column, an empty id, a short line)."""
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{path}: cannot read the pairs file ({err.strerror})") from None
    with handle:
        try:
            rows = list(csv.reader(handle))
        except (csv.Error, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a UTF-8 CSV file ({err})") from None
    if not rows:
        raise ValueError(f"{path}: empty; give a header (user,item) and one pair a line")
    header = [name.strip() for name in rows[0]]
    columns = []
    for names in (USER_COLUMNS, ITEM_COLUMNS):
        found = [n for n in names if n in header]
        if not found:
            raise ValueError(
                f"{path}, line 1: no {' or '.join(names)} column in the header {header}"
            )
        columns.append(header.index(found[0]))
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) <= max(columns):
            raise ValueError(
                f"{path}, line {line}: {len(row)} fields, the header has {len(header)}"
            )
        user, item = (row[c].strip() for c in columns)
        if not user or not item:
            raise ValueError(f"{path}, line {line}: an empty user or item id")
        pairs.append((user, item))
    if not pairs:
        raise ValueError(f"{path}: a header and no pairs")
    return pairs


def check_output(path: Path, kind: str = "explanations") -> None:
    """``ValueError`` unless ``path`` is a new ``.jsonl`` file name (nothing is replaced);
    ``kind``: what is written there, for the message."""
    if path.suffix != ".jsonl":
        raise ValueError(f"{path}: {kind} are written as JSON lines; give a .jsonl name")
    if path.exists() or path.is_symlink():
        raise ValueError(f"{path}: exists; give a new file name (nothing is replaced)")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: its folder {path.parent} does not exist")
