"""RecBole atomic files, read directly: ``NAME.inter`` (a user and an item a row, optionally a
rating and a timestamp) and the optional ``NAME.user`` and ``NAME.item`` (every user and item,
rated or not, with their other fields as text). Tab-separated, no quoting; each header field is
``name:type`` with type ``token``, ``token_seq``, ``float`` or ``float_seq`` (RecBole's own
format: https://recbole.io/docs/user_guide/data/atomic_files.html). Bad input is an error
naming the file and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gnnrec.data.csv_rows import parse_float, read_text
from gnnrec.data.datasets import register_dataset
from gnnrec.data.errors import DataError
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")


@dataclass(kw_only=True)
class RecBoleOptions:
    """``[data.options]`` of the ``recbole`` dataset: ``name``, the files' stem (default: the
    folder's one ``.inter`` file), and the fields that hold the user, the item, the rating
    (absent from the file: 1.0) and the timestamp (absent: 0)."""

    name: str = ""
    user_field: str = "user_id"
    item_field: str = "item_id"
    rating_field: str = "rating"
    timestamp_field: str = "timestamp"


def atomic_rows(path: Path) -> tuple[dict[str, str], list[tuple[int, dict[str, str]]]]:
    """``({field: type}, [(line, {field: value})])`` of an atomic file, split on tabs literally
    (RecBole quotes nothing); a header field that is not ``name:type`` with a RecBole type, or
    a row with another number of fields, is an error naming the file and line."""
    lines = read_text(path).splitlines()
    if not lines:
        raise DataError("empty file: no header", path)
    fields = {}
    for raw in lines[0].split("\t"):
        name, _, kind = raw.strip().partition(":")
        if kind not in FIELD_TYPES or not name:
            raise DataError(
                f"header field {raw!r} is not name:type with a type of {FIELD_TYPES}", path, 1
            )
        fields[name] = kind
    rows = []
    for number, text in enumerate(lines[1:], start=2):
        if not text.strip():
            continue
        values = text.split("\t")
        if len(values) != len(fields):
            raise DataError(f"{len(values)} fields, the header has {len(fields)}", path, number)
        rows.append((number, dict(zip(fields, values))))
    return fields, rows


def _nodes(path: Path, id_field: str) -> tuple[NodeTable, dict[str, int]]:
    """The node table of a ``.user``/``.item`` file (its other fields as text) and the row of
    each id; a repeated or empty id is an error naming its line."""
    fields, rows = atomic_rows(path)
    if id_field not in fields:
        raise DataError(f"no {id_field} field; it has {sorted(fields)}", path, 1)
    index: dict[str, int] = {}
    for line, row in rows:
        node = row[id_field].strip()
        if not node:
            raise DataError(f"empty {id_field}", path, line)
        if node in index:
            raise DataError(f"{id_field} {node!r} appears twice", path, line)
        index[node] = len(index)
    texts = {f: [row[f].strip() for _, row in rows] for f in fields if f != id_field}
    return NodeTable(list(index), texts), index


def _stem(folder: Path, name: str) -> str:
    if name:
        return name
    found = sorted(folder.glob("*.inter"))
    if len(found) != 1:
        raise DataError(
            f"holds {len(found)} .inter files; name the one to read with data.options.name",
            folder,
        )
    return found[0].stem


def load_recbole(folder: str | Path, options: RecBoleOptions | None = None) -> TextGraph:
    """The graph of the atomic files in ``folder`` (see the module docstring)."""
    o, folder = options or RecBoleOptions(), Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder of RecBole atomic files", folder)
    stem = _stem(folder, o.name)
    inter = folder / f"{stem}.inter"
    if not inter.is_file():
        raise DataError(f"no {stem}.inter here", folder)
    tables = {}
    for kind, id_field in (("user", o.user_field), ("item", o.item_field)):
        path = folder / f"{stem}.{kind}"
        tables[kind] = _nodes(path, id_field) if path.is_file() else None
    fields, rows = atomic_rows(inter)
    for field_name in (o.user_field, o.item_field):
        if field_name not in fields:
            raise DataError(f"no {field_name} field; it has {sorted(fields)}", inter, 1)
    index = {kind: {} if table is None else table[1] for kind, table in tables.items()}
    ends = {"user": [], "item": []}
    ratings, times = [], []
    rated, stamped = o.rating_field in fields, o.timestamp_field in fields
    for line, row in rows:
        for kind, field_name in (("user", o.user_field), ("item", o.item_field)):
            node = row[field_name].strip()
            if not node:
                raise DataError(f"empty {field_name}", inter, line)
            if tables[kind] is not None and node not in index[kind]:
                raise DataError(f"{field_name} {node!r} is not in {stem}.{kind}", inter, line)
            ends[kind].append(index[kind].setdefault(node, len(index[kind])))
        rating = row[o.rating_field] if rated else "1"
        stamp = row[o.timestamp_field] if stamped else "0"
        ratings.append(parse_float(rating, o.rating_field, inter, line))
        times.append(int(parse_float(stamp, o.timestamp_field, inter, line)))
    if not rows:
        raise DataError("no interactions", inter)
    nodes = {
        kind: tables[kind][0] if tables[kind] is not None else NodeTable(list(index[kind]))
        for kind in tables
    }
    return TextGraph(
        stem,
        nodes["user"],
        nodes["item"],
        Interactions(np.asarray(ends["user"]), np.asarray(ends["item"]), ratings, times),
    )


@register_dataset("recbole", options=RecBoleOptions)
def _load_recbole_dataset(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    return load_recbole(path, cfg.dataset_options), None
