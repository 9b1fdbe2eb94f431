"""Interaction and node tables read one row at a time: the reference.

:mod:`gnnrec.data.tabular` reads the same tables column-wise; this module is what it is held
to (tests/test_columnar_ingest.py), the path it takes for a file it cannot read exactly (the
first bad row of a file is located here, so errors read ``file:line: what is wrong``), and the
baseline of ``gnnrec bench ingest``. About 4 us a row: use it for small tables only.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gnnrec.common.log import get_logger
from gnnrec.data.csv_rows import iter_rows, parse_float, parse_int, parse_weight
from gnnrec.data.errors import DataError
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")

log = get_logger(__name__)


@dataclass(kw_only=True)
class ColumnMapping:
    """Which columns hold what. ``rating``/``timestamp`` are optional (1.0 and 0 when absent);
    ``weight``: an optional edge-weight column (finite, >= 0); ``user_text``/``item_text``
    name text columns of the user and item tables."""

    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = None
    timestamp: str | None = None
    weight: str | None = None
    user_link_weight: str | None = None  # a weight column of the user–user edge table
    item_link_weight: str | None = None  # of the item–item edge table
    user_text: list[str] = field(default_factory=list)
    item_text: list[str] = field(default_factory=list)


def table_files(path: str | Path) -> list[Path]:
    """``path`` itself, or for a folder its parts: every ``.csv``/``.tsv``/``.parquet`` file
    in it or in its sub-folders (Hive-style ``key=value/`` partitions), sorted by path (read in
    that order). Names starting with ``.`` or ``_`` (``_SUCCESS``, checksums) are not parts;
    a part with no data rows adds nothing (a warning names it)."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(
            p
            for p in path.rglob("*")
            if p.suffix in TABLE_SUFFIXES
            and p.is_file()
            and not any(n[:1] in "._" for n in p.relative_to(path).parts)
        )
        if not parts:
            raise DataError("folder holds no .csv, .tsv or .parquet parts", path)
        empty = [p for p in parts if not _has_rows(p)]
        for part in empty:
            log.warning("%s: no data rows; the part adds nothing", part)
        if len(empty) == len(parts):
            raise DataError("every part of the folder is empty (no data rows)", path)
        return [p for p in parts if p not in empty]
    if not path.exists():
        raise DataError("file not found", path)
    return [path]


def _has_rows(part: Path) -> bool:
    """Whether a table part holds a data row: Parquet by its metadata, CSV/TSV by a non-blank
    line after the header."""
    if part.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(part).metadata.num_rows > 0
        except (OSError, ValueError):  # not Parquet: the reader names the file
            return True
    with open(part, "rb") as f:
        f.readline()
        return any(line.strip() for line in f)


def canonical_parquet_column(column, name: str, role: str, path: Path):
    """A Parquet column in the one form the CSV reader's text would give: ``role`` ``"id"``:
    strings, or int64 for integers and for floats that are all whole (``0.0`` is the id
    ``0``); ``"timestamp"``: int64 Unix seconds from a timestamp type; anything else as it is.
    An id column of NaN or fractional floats, bytes, lists or any other type is a
    :class:`DataError` naming the file, the column and (for a value) its line."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if pa.types.is_dictionary(t):
        return canonical_parquet_column(column.cast(t.value_type), name, role, path)
    if role == "timestamp" and pa.types.is_timestamp(t):
        return column.cast(pa.timestamp("s"), safe=False).cast(pa.int64())
    if role != "id" or pa.types.is_integer(t) or pa.types.is_string(t):
        return column
    if pa.types.is_large_string(t):
        return column.cast(pa.string())
    if pa.types.is_floating(t):
        whole = pc.and_(pc.is_finite(column), pc.equal(pc.floor(column), column))
        bad = pc.invert(whole.fill_null(True))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            raise DataError(
                f"{name} {column[row].as_py()!r} is not a whole number: ids are strings or "
                "integers",
                path,
                row + 2,
            )
        return column.cast(pa.int64())
    if pa.types.is_null(t):
        return column.cast(pa.string())  # every value missing: "empty id" at its first line
    raise DataError(
        f"column {name} holds {t} values; ids are strings or integers (cast the column "
        "before writing the file)",
        path,
    )


def rows(
    path: Path, columns: list[str], roles: Mapping[str, str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a ``.csv``/``.tsv`` or ``.parquet`` file as strings; for Parquet, "line" is
    row + 2 so the numbers match the same table written as CSV with a header, and the columns
    of ``roles`` (``"id"``, ``"timestamp"``) take :func:`canonical_parquet_column`'s form."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.is_file():
            raise DataError("is a folder, not a file" if path.is_dir() else "file not found", path)
        table = pq.read_table(path)
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError(f"missing column(s) {missing}; it has {table.column_names}", path)
        if table.num_rows == 0:
            raise DataError("file has no data rows", path)
        roles = roles or {}
        data = {
            c: canonical_parquet_column(table.column(c), c, roles.get(c, ""), path).to_pylist()
            for c in columns
        }
        for i in range(table.num_rows):
            yield i + 2, {c: "" if data[c][i] is None else str(data[c][i]) for c in columns}
    else:
        yield from iter_rows(path, columns, delimiter="\t" if path.suffix == ".tsv" else ",")


def read_node_rows(path: Path, id_col: str, text_cols: list[str]) -> NodeTable:
    """A node table with text columns (ids stripped); a duplicate id is an error."""
    ids, texts = [], {c: [] for c in text_cols}
    seen: set[str] = set()
    for line, row in rows(path, [id_col, *text_cols], {id_col: "id"}):
        node = row[id_col].strip()
        if node in seen:
            raise DataError(f"{id_col} {node!r} appears twice", path, line)
        seen.add(node)
        ids.append(node)
        for c in text_cols:
            texts[c].append(row[c])
    return NodeTable(ids, texts)


def read_interaction_rows(
    path: Path,
    m: ColumnMapping,
    known_users: Container[str] | None = None,
    known_items: Container[str] | None = None,
) -> tuple[list[str], list[str], list[float], list[int], list[float]]:
    """One file's ``(users, items, ratings, timestamps, weights)`` (weights empty without a
    weight column), ids stripped; the first bad row (empty id, id missing from a given node
    table, bad rating, timestamp or weight) is an error."""
    cols = [m.user, m.item] + list(dict.fromkeys(c for c in (m.rating, m.timestamp, m.weight) if c))
    roles = {m.user: "id", m.item: "id", **({m.timestamp: "timestamp"} if m.timestamp else {})}
    users, items, ratings, times, weights = [], [], [], [], []
    for line, row in rows(path, cols, roles):
        for kind, col, known, out in (
            ("user", m.user, known_users, users),
            ("item", m.item, known_items, items),
        ):
            node = row[col].strip()
            if not node:
                raise DataError(f"empty {col}", path, line)
            if known is not None and node not in known:
                raise DataError(f"unknown {kind} {node!r} (not in the {kind} table)", path, line)
            out.append(node)
        ratings.append(parse_float(row[m.rating], m.rating, path, line) if m.rating else 1.0)
        times.append(parse_int(row[m.timestamp], m.timestamp, path, line) if m.timestamp else 0)
        if m.weight:
            weights.append(parse_weight(row[m.weight], m.weight, path, line))
    return users, items, ratings, times, weights


def read_edge_rows(
    path: Path, index: Mapping[str, int], kind: str, weight: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``[2, E']`` internal ids from a ``src,dst`` table, and the ``weight`` column's values
    ``[E']`` (None without one); unknown ids and bad weights are errors with line."""
    pairs, weights = [], []
    columns = ["src", "dst", *([weight] if weight else [])]
    for line, row in rows(path, columns, {"src": "id", "dst": "id"}):
        ends = [row["src"].strip(), row["dst"].strip()]
        for node in ends:
            if node not in index:
                raise DataError(f"unknown {kind} {node!r}", path, line)
        pairs.append([index[ends[0]], index[ends[1]]])
        if weight:
            weights.append(parse_weight(row[weight], weight, path, line))
    edges = np.asarray(pairs, dtype=np.int64).T.reshape(2, -1)
    return edges, np.asarray(weights, dtype=np.float32) if weight else None


def load_table_rows(
    interactions: str | Path,
    *,
    users: str | Path | None = None,
    items: str | Path | None = None,
    mapping: ColumnMapping | None = None,
    user_edges: str | Path | None = None,
    item_edges: str | Path | None = None,
    name: str | None = None,
) -> TextGraph:
    """:func:`gnnrec.data.tabular.load_table`, one row at a time (same arguments, same graph)."""
    m = mapping or ColumnMapping()
    path = Path(interactions)
    tables: dict[str, NodeTable | None] = {"user": None, "item": None}
    index: dict[str, dict[str, int]] = {"user": {}, "item": {}}
    for kind, table_path, col, text in (
        ("user", users, m.user, m.user_text),
        ("item", items, m.item, m.item_text),
    ):
        if table_path is not None:
            tables[kind] = read_node_rows(Path(table_path), col, text)
            index[kind] = {node: i for i, node in enumerate(tables[kind].ids)}
    fixed = {kind: index[kind] if tables[kind] is not None else None for kind in index}
    u_idx, i_idx, ratings, times, weights = [], [], [], [], []
    for part in table_files(path):
        u, i, r, t, w = read_interaction_rows(part, m, fixed["user"], fixed["item"])
        u_idx += [index["user"].setdefault(node, len(index["user"])) for node in u]
        i_idx += [index["item"].setdefault(node, len(index["item"])) for node in i]
        ratings += r
        times += t
        weights += w
    return TextGraph(
        name or path.stem,
        tables["user"] or NodeTable(list(index["user"])),
        tables["item"] or NodeTable(list(index["item"])),
        Interactions(
            np.asarray(u_idx), np.asarray(i_idx), ratings, times, weights if m.weight else None
        ),
        **_links(user_edges, index["user"], "user", m.user_link_weight),
        **_links(item_edges, index["item"], "item", m.item_link_weight),
    )


def _links(
    path: str | Path | None, index: Mapping[str, int], kind: str, weight: str | None
) -> dict[str, np.ndarray | None]:
    """A TextGraph's ``{kind}_edges`` and ``{kind}_edge_weight`` from a same-type edge table
    (none when ``path`` is None)."""
    edges, weights = (
        (None, None) if path is None else read_edge_rows(Path(path), index, kind, weight)
    )
    return {f"{kind}_edges": edges, f"{kind}_edge_weight": weights}
