"""Interaction tables (CSV, TSV, Parquet; a file or a folder of parts) read column-wise.

Every file is streamed in Arrow record batches; each batch's ids are dictionary-encoded on
their own, and the batches' dictionaries are encoded once more at the end, which numbers ids in
order of first appearance with no Python object per row (``[E]`` int64 indices, ids kept as
:class:`~gnnrec.data.columns.TextColumn`). Checks are vectorised (empty or missing ids, ids
missing from a node table, non-numeric or non-finite ratings, bad timestamps); a file that fails
one, or that Arrow cannot read exactly as :mod:`gnnrec.data.table_rows` would (quoted newlines,
odd headers), is read again row by row, which names the first bad row as ``file:line`` or,
where nothing is wrong, gives its rows. The result equals :func:`table_rows.load_table_rows`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gnnrec.data.columns import TextColumn, as_numpy, may_need_strip, strip
from gnnrec.data.datasets import register_dataset
from gnnrec.data.relation_tables import (
    EdgeTableSpec,
    NodeTableSpec,
    read_relation_tables,
    table_specs,
)
from gnnrec.data.table_rows import (
    ColumnMapping,
    canonical_parquet_column,
    read_edge_rows,
    read_interaction_rows,
    read_node_rows,
    table_files,
)
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig


class _RowByRow(Exception):
    """This file must be read row by row (a check failed, or Arrow reads it differently)."""


def _batches(path: Path, ids: list[str], numbers: dict[str, pa.DataType], texts: list[str]):
    """Record batches of ``path``'s columns: ids stripped (or int64), numbers converted, texts
    as strings; raises :class:`_RowByRow` where the result could differ from the row reader.
    A file is read whole, on every core (its ids are kept until the end in any case)."""
    columns = [*ids, *numbers, *texts]
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            source = pq.ParquetFile(path)
            schema = source.schema_arrow
            if any(c not in schema.names for c in columns):
                raise _RowByRow
            roles = {c: "id" for c in ids}
            roles |= {c: "timestamp" for c, t in numbers.items() if t == pa.int64()}
            table = source.read(columns=columns)
            for c, role in roles.items():
                column = canonical_parquet_column(table.column(c), c, role, path)
                table = table.set_column(table.schema.get_field_index(c), c, column)
            if not all(_parquet_exact(table.schema.field(c).type, numbers.get(c)) for c in columns):
                raise _RowByRow
        else:
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=32 << 20),
                parse_options=pacsv.ParseOptions(delimiter="\t" if path.suffix == ".tsv" else ","),
                convert_options=pacsv.ConvertOptions(
                    include_columns=columns,
                    column_types={**{c: pa.string() for c in (*ids, *texts)}, **numbers},
                    strings_can_be_null=False,
                ),
            )
        if table.num_rows == 0:
            raise _RowByRow
        for batch in table.to_batches():
            yield {
                **{c: _key(batch.column(c)) for c in ids},
                **{c: _number(batch.column(c), t) for c, t in numbers.items()},
                **{c: _text(batch.column(c)) for c in texts},
            }
    except (pa.ArrowException, OSError, UnicodeDecodeError):
        raise _RowByRow from None


def _parquet_exact(t: pa.DataType, number: pa.DataType | None) -> bool:
    """Whether Arrow converts a Parquet column of type ``t`` as ``str()`` then the row reader's
    parsing would: strings and integers always; floats only as ratings (``str(5.0)`` is "5.0"
    where Arrow's cast gives "5", and ``int("5.0")`` fails)."""
    if pa.types.is_integer(t):
        return True
    if number is None:
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    return number == pa.float64() and pa.types.is_floating(t)


def _key(column: pa.Array) -> pa.Array:
    if column.null_count:
        raise _RowByRow
    if pa.types.is_integer(column.type):
        return column.cast(pa.int64())  # uint64 beyond int64 raises: row by row
    if may_need_strip(column):
        column = strip(column)
        if pc.any(pc.equal(pc.binary_length(column), 0)).as_py():
            raise _RowByRow
    return column


def _number(column: pa.Array, kind: pa.DataType) -> np.ndarray:
    if column.null_count:
        raise _RowByRow
    values = as_numpy(column.cast(kind))
    if kind == pa.float64():
        if not np.isfinite(values).all():
            raise _RowByRow
        return values.astype(np.float32)  # as Interactions keeps it
    return values


def _text(column: pa.Array) -> pa.Array:
    return column.fill_null("").cast(pa.string())


@dataclass
class _Keys:
    """One id column of a table as read: its pieces (batches, or a file read row by row) and
    the file each piece came from."""

    pieces: list[pa.Array] = field(default_factory=list)
    files: list[int] = field(default_factory=list)

    def add(self, keys: pa.Array, file: int) -> None:
        self.pieces.append(keys)
        self.files.append(file)

    def drop_file(self, file: int) -> None:
        keep = [n for n, f in enumerate(self.files) if f != file]
        self.pieces = [self.pieces[n] for n in keep]
        self.files = [self.files[n] for n in keep]

    def encode(self, known: pa.Array | None) -> tuple[pa.Array, np.ndarray]:
        """The distinct ids (``known`` when given, else in order of first appearance) and
        ``[rows]`` int64 positions into them (``-1``: not in ``known``). One hash pass over
        the whole column (the pieces share one dictionary; nothing is concatenated first)."""
        arrays = _same_type([*self.pieces, *([] if known is None else [known])])
        keys = pa.chunked_array(arrays[: len(self.pieces)], arrays[0].type)
        if known is None:
            encoded = pc.dictionary_encode(keys)
            ids, codes = encoded.chunk(0).dictionary, [c.indices for c in encoded.chunks]
        else:
            ids, codes = arrays[-1], pc.index_in(keys, value_set=arrays[-1]).fill_null(-1).chunks
        return ids, np.concatenate([as_numpy(c) for c in codes], dtype=np.int64)

    def files_with_unknown(self, known: pa.Array) -> set[int]:
        _, positions = self.encode(known)
        ends = np.cumsum([len(p) for p in self.pieces])
        bad = np.flatnonzero(positions < 0)
        return {self.files[k] for k in np.searchsorted(ends, bad, side="right")}


def _same_type(arrays: list[pa.Array]) -> list[pa.Array]:
    """All int64 when every array holds integers, else all strings (ints as Python prints them)."""
    if arrays and all(pa.types.is_integer(a.type) for a in arrays):
        return [a.cast(pa.int64()) for a in arrays]
    return [a.cast(pa.string()) for a in arrays]


@dataclass
class _NodeKeys:
    """A node table: its ids as they compare (int64 or strings) and its :class:`NodeTable`."""

    keys: pa.Array
    table: NodeTable

    def known(self) -> set[str]:
        return set(self.table.ids)


def read_node_table(path: str | Path, id_col: str, text_cols: list[str]) -> NodeTable:
    """A node table with text columns, ids stripped; a duplicate id is an error (with line)."""
    return _read_node_keys(Path(path), id_col, text_cols).table


def _read_node_keys(path: Path, id_col: str, text_cols: list[str]) -> _NodeKeys:
    try:
        batches = list(_batches(path, [id_col], {}, text_cols))
        keys = pa.chunked_array([b[id_col] for b in batches]).combine_chunks()
        if pc.count_distinct(keys).as_py() != len(keys):
            raise _RowByRow
    except _RowByRow:
        table = read_node_rows(path, id_col, text_cols)
        return _NodeKeys(pa.array(list(table.ids), pa.string()), table)
    texts = {
        c: TextColumn(pa.chunked_array([b[c] for b in batches], pa.string())) for c in text_cols
    }
    return _NodeKeys(keys, NodeTable(TextColumn(keys.cast(pa.string())), texts))


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
    """A TextGraph from an interaction table (a file, or a folder of parts read in name order)
    and optional user/item tables with text.

    With a user or item table, interactions naming an id missing from it are errors (with
    line); without one, the node set is the ids seen in the interactions, in order of first
    appearance. ``user_edges``/``item_edges``: tables with ``src`` and ``dst`` columns of ids.
    """
    m = mapping or ColumnMapping()
    path = Path(interactions)
    nodes = {
        "user": None if users is None else _read_node_keys(Path(users), m.user, m.user_text),
        "item": None if items is None else _read_node_keys(Path(items), m.item, m.item_text),
    }
    numbers = {
        c: t
        for c, t in ((m.rating, pa.float64()), (m.timestamp, pa.int64()), (m.weight, pa.float64()))
        if c
    }
    codes = {"user": _Keys(), "item": _Keys()}
    ratings: list[np.ndarray] = []
    times: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    files = table_files(path)
    for n, part in enumerate(files):
        try:
            pieces = 0
            for batch in _batches(part, [m.user, m.item], numbers, []):
                codes["user"].add(batch[m.user], n)
                codes["item"].add(batch[m.item], n)
                count = len(batch[m.user])
                ratings.append(batch[m.rating] if m.rating else np.ones(count, np.float32))
                times.append(batch[m.timestamp] if m.timestamp else np.zeros(count, np.int64))
                if m.weight:
                    if (batch[m.weight] < 0).any():
                        raise _RowByRow  # the row reader names the line
                    weights.append(batch[m.weight])
                pieces += 1
        except _RowByRow:
            _first_unknown(files[:n], codes, nodes, m)  # an earlier file's error comes first
            for kind in codes:
                codes[kind].drop_file(n)
            del ratings[len(ratings) - pieces :], times[len(times) - pieces :]
            del weights[len(weights) - (pieces if m.weight else 0) :]
            known = {k: None if v is None else v.known() for k, v in nodes.items()}
            u, i, r, t, w = read_interaction_rows(part, m, known["user"], known["item"])
            codes["user"].add(pa.array(u, pa.string()), n)
            codes["item"].add(pa.array(i, pa.string()), n)
            ratings.append(np.asarray(r, dtype=np.float32))
            times.append(np.asarray(t, dtype=np.int64))
            if m.weight:
                weights.append(np.asarray(w, dtype=np.float32))
    tables, index, keys = {}, {}, {}
    with ThreadPoolExecutor(2) as pool:  # Arrow's hashing lets go of the GIL
        encoded = {
            kind: pool.submit(codes[kind].encode, None if node is None else node.keys)
            for kind, node in nodes.items()
        }
    for kind, node in nodes.items():
        keys[kind], index[kind] = encoded[kind].result()
        if (index[kind] < 0).any():
            _first_unknown(files, codes, nodes, m)
        tables[kind] = node.table if node else NodeTable(TextColumn(keys[kind].cast(pa.string())))
    del codes, encoded  # the ids as read: their positions are all that is needed now
    ratings, times = np.concatenate(ratings), np.concatenate(times)
    weight = np.concatenate(weights) if m.weight else None
    # Arrow's allocator keeps what the batches and hashes freed for reuse (3.3 GB after 10^8
    # rows, as much as the arrays kept): hand it back before the split and graph allocate
    pa.default_memory_pool().release_unused()
    return TextGraph(
        name or path.stem,
        tables["user"],
        tables["item"],
        Interactions(index["user"], index["item"], ratings, times, weight),
        **_links(user_edges, keys["user"], tables["user"], "user", m.user_link_weight),
        **_links(item_edges, keys["item"], tables["item"], "item", m.item_link_weight),
    )


def _first_unknown(
    files: list[Path],
    codes: dict[str, _Keys],
    nodes: dict[str, _NodeKeys | None],
    m: ColumnMapping,
) -> None:
    """Raises the row reader's error for the first of ``files`` naming an id missing from a
    node table (nothing when every id is known)."""
    bad_files = set()
    for kind, node in nodes.items():
        if node is None or not codes[kind].files:
            continue
        bad_files |= codes[kind].files_with_unknown(node.keys)
    for n in sorted(f for f in bad_files if f < len(files)):
        known = {k: None if v is None else v.known() for k, v in nodes.items()}
        read_interaction_rows(files[n], m, known["user"], known["item"])  # raises


def _links(
    path: str | Path | None, keys: pa.Array, table: NodeTable, kind: str, weight: str | None
) -> dict[str, np.ndarray | None]:
    """A TextGraph's ``{kind}_edges`` and ``{kind}_edge_weight`` from a same-type edge table
    (none when ``path`` is None)."""
    edges, weights = (None, None) if path is None else _edges(Path(path), keys, table, kind, weight)
    return {f"{kind}_edges": edges, f"{kind}_edge_weight": weights}


def _edges(
    path: Path, keys: pa.Array, table: NodeTable, kind: str, weight: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``[2, E']`` internal ids from a ``src,dst`` table and its ``weight`` column (finite,
    >= 0; None without one); unknown ids and bad weights are errors with line."""
    try:
        numbers = {weight: pa.float64()} if weight else {}
        batches = list(_batches(path, ["src", "dst"], numbers, []))
        ends = []
        for end in ("src", "dst"):
            column, ids = _same_type(
                [pa.chunked_array([b[end] for b in batches]).combine_chunks(), keys]
            )
            ends.append(as_numpy(pc.index_in(column, value_set=ids).fill_null(-1)))
        if any((e < 0).any() for e in ends):
            raise _RowByRow
        weights = np.concatenate([b[weight] for b in batches]) if weight else None
        if weights is not None and (weights < 0).any():
            raise _RowByRow  # the row reader names the line
        return np.stack(ends).astype(np.int64), weights
    except _RowByRow:
        index = {node: i for i, node in enumerate(table.ids)}
        return read_edge_rows(path, index, kind, weight)


@dataclass(kw_only=True)
class TableOptions:
    """``[data.options]`` of the ``table`` dataset: optional user/item tables (with text
    columns) and user–user / item–item edge tables (``src``, ``dst`` columns of ids), and
    which columns hold what. Empty ``rating_column``/``timestamp_column``: 1.0 and 0."""

    users_path: str = ""
    items_path: str = ""
    user_edges_path: str = ""
    item_edges_path: str = ""
    # a weight column of each edge table (empty: its edges weigh 1)
    user_edges_weight_column: str = ""
    item_edges_weight_column: str = ""
    user_column: str = "user_id"
    item_column: str = "item_id"
    rating_column: str = ""
    timestamp_column: str = ""
    user_text_columns: list[str] = field(default_factory=list)
    item_text_columns: list[str] = field(default_factory=list)
    # entity types and named relations (gnnrec/data/relation_tables.py): [[...node_tables]]
    # with type, path, id_column, text_columns; [[...edge_tables]] with path, source, target,
    # relation (or relation_column), reverse, source_column, target_column, weight_column
    node_tables: list[dict[str, Any]] = field(default_factory=list)
    edge_tables: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        where = "data.options."
        self.node_specs = table_specs(self.node_tables, NodeTableSpec, where + "node_tables")
        self.edge_specs = table_specs(self.edge_tables, EdgeTableSpec, where + "edge_tables")


@register_dataset("table", options=TableOptions)
def _load_table_dataset(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, None]:
    o: TableOptions = cfg.dataset_options
    mapping = ColumnMapping(
        user=o.user_column,
        item=o.item_column,
        rating=o.rating_column or None,
        timestamp=o.timestamp_column or None,
        weight=cfg.edge_weight_spec.column,
        user_link_weight=o.user_edges_weight_column or None,
        item_link_weight=o.item_edges_weight_column or None,
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
    if o.node_specs or o.edge_specs:
        read_relation_tables(graph, o.node_specs, o.edge_specs)
    return graph, None
