"""Generic CSV/Parquet interaction tables, read through a column mapping."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gnnrec.data.csv_rows import iter_rows, parse_float, parse_int
from gnnrec.data.datasets import register_dataset
from gnnrec.data.errors import DataError
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig


@dataclass(kw_only=True)
class ColumnMapping:
    """Which columns hold what. ``rating``/``timestamp`` are optional (1.0 and 0 when absent);
    ``user_text``/``item_text`` name text columns of the user and item tables."""

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = None
    timestamp: str | None = None
    user_text: list[str] = field(default_factory=list)
    item_text: list[str] = field(default_factory=list)


def _rows(path: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a ``.csv``/``.tsv`` or ``.parquet`` file; for Parquet, "line" is row + 2 so the
    numbers match the same table written as CSV with a header."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(
                "reading Parquet needs pyarrow: pip install 'gnnrec[parquet]'", path
            ) from None
        if not path.is_file():
            raise DataError("is a folder, not a file" if path.is_dir() else "file not found", path)
        table = pq.read_table(path)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError(f"missing column(s) {missing}; it has {table.column_names}", path)
        if table.num_rows == 0:
            raise DataError("file has no data rows", path)
        data = {c: table.column(c).to_pylist() for c in columns}
        for i in range(table.num_rows):
            yield i + 2, {c: "" if data[c][i] is None else str(data[c][i]) for c in columns}
    else:
        yield from iter_rows(path, columns, delimiter="\t" if path.suffix == ".tsv" else ",")


def read_node_table(
    path: Path, id_col: str, text_cols: list[str]
) -> tuple[NodeTable, dict[str, int]]:
    """A node table with text columns, and its id -> index map; duplicate ids are errors."""
    ids, texts = [], {c: [] for c in text_cols}
    index: dict[str, int] = {}
    for line, row in _rows(path, [id_col, *text_cols]):
        node = row[id_col].strip()
        if node in index:
            raise DataError(f"{id_col} {node!r} appears twice", path, line)
        index[node] = len(ids)
        ids.append(node)
        for c in text_cols:
            texts[c].append(row[c])
    return NodeTable(ids, texts), index


def load_table(
    interactions: str | Path,
    *,
    users: str | Path | None = None,
    items: str | Path | None = None,
    mapping: ColumnMapping | None = None,
    user_edges: str | Path | None = None,
    item_edges: str | Path | None = None,
    name: str | None = None,
) -> TextGraph:
    """A TextGraph from an interaction table and optional user/item tables with text.

    With a user or item table, interactions naming an id missing from it are errors (with line);
    without one, the node set is the ids seen in the interactions, in order of appearance.
    ``user_edges``/``item_edges``: tables with ``src`` and ``dst`` columns of known ids.
    """
    m = mapping or ColumnMapping()
    path = Path(interactions)
    cols = [m.user, m.item] + [c for c in (m.rating, m.timestamp) if c]
    known_users = known_items = None
    user_table = item_table = None
    if users is not None:
        user_table, known_users = read_node_table(Path(users), m.user, m.user_text)
    if items is not None:
        item_table, known_items = read_node_table(Path(items), m.item, m.item_text)
    seen_users: dict[str, int] = known_users if known_users is not None else {}
    seen_items: dict[str, int] = known_items if known_items is not None else {}
    u_idx, i_idx, ratings, times = [], [], [], []
    for line, row in _rows(path, cols):
        ids = []
        for kind, col, seen, fixed in (
            ("user", m.user, seen_users, known_users),
            ("item", m.item, seen_items, known_items),
        ):
            node = row[col].strip()
            if not node:
                raise DataError(f"empty {col}", path, line)
            if fixed is not None and node not in fixed:
                raise DataError(f"unknown {kind} {node!r} (not in the {kind} table)", path, line)
            ids.append(seen.setdefault(node, len(seen)))
        u_idx.append(ids[0])
        i_idx.append(ids[1])
        ratings.append(parse_float(row[m.rating], m.rating, path, line) if m.rating else 1.0)
        times.append(parse_int(row[m.timestamp], m.timestamp, path, line) if m.timestamp else 0)
    user_table = user_table or NodeTable(list(seen_users))
    item_table = item_table or NodeTable(list(seen_items))
    return TextGraph(
        name or path.stem,
        user_table,
        item_table,
        Interactions(np.asarray(u_idx), np.asarray(i_idx), ratings, times),
        user_edges=None if user_edges is None else _edges(Path(user_edges), seen_users, "user"),
        item_edges=None if item_edges is None else _edges(Path(item_edges), seen_items, "item"),
    )


@dataclass(kw_only=True)
class TableOptions:
    """``[data.options]`` of the ``table`` dataset: optional user/item tables (with text
    columns) and user–user / item–item edge tables (``src``, ``dst`` columns of ids), and
    which columns hold what. Empty ``rating_column``/``timestamp_column``: 1.0 and 0."""

    users_path: str = ""
    items_path: str = ""
    user_edges_path: str = ""
    item_edges_path: str = ""
    user_column: str = "user_id"
    item_column: str = "item_id"
    rating_column: str = ""
    timestamp_column: str = ""
    user_text_columns: list[str] = field(default_factory=list)
    item_text_columns: list[str] = field(default_factory=list)


@register_dataset("table", options=TableOptions)
def _load_table_dataset(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    o: TableOptions = cfg.dataset_options
    mapping = ColumnMapping(
        user=o.user_column,
        item=o.item_column,
        rating=o.rating_column or None,
        timestamp=o.timestamp_column or None,
        user_text=o.user_text_columns,
        item_text=o.item_text_columns,
    )
    graph = load_table(
        path,
        users=o.users_path or None,
        items=o.items_path or None,
        mapping=mapping,
        user_edges=o.user_edges_path or None,
        item_edges=o.item_edges_path or None,
    )
    return graph, None


def _edges(path: Path, index: dict[str, int], kind: str) -> np.ndarray:
    """``[2, E']`` internal ids from a ``src,dst`` table; unknown ids are errors with line."""
    pairs = []
    for line, row in _rows(path, ["src", "dst"]):
        ends = [row["src"].strip(), row["dst"].strip()]
        for node in ends:
            if node not in index:
                raise DataError(f"unknown {kind} {node!r}", path, line)
        pairs.append([index[ends[0]], index[ends[1]]])
    return np.asarray(pairs, dtype=np.int64).T.reshape(2, -1)
