"""Entity node tables and named relation tables: the ``[[data.options.node_tables]]`` and
``[[data.options.edge_tables]]`` of the ``table`` dataset.

A node table declares an entity type (``category``, ``tag``, ``artist``, a KG ``entity``)
and, with a ``path``, lists its ids with optional text columns (encoded like users' and items'
text); without a path its nodes are the ids its relations name, in order of first
appearance. Entity ids are one namespace across entity types (as a knowledge graph's are):
an id under two types is an error. An edge table gives one relation's pairs, from
``source``-type ids to ``target``-type ids (``user``, ``item`` or a declared entity type),
named by ``relation`` or, for a table of KG triples, by each row's ``relation_column``; every
relation also gets its reverse (``reverse``, default ``rev_<name>``). Several tables may add
to one relation with the same endpoint types. Edge and node tables are read row by row (about
4 us a row), which names the file and line of any bad row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnnrec.common.typed_fields import checked_fields, unknown_keys
from gnnrec.data.csv_rows import parse_weight
from gnnrec.data.errors import DataError
from gnnrec.data.hetero import BASE_TYPES, Relation
from gnnrec.data.table_rows import read_node_rows, rows
from gnnrec.data.textgraph import NodeTable, RelationEdges, TextGraph


@dataclass(kw_only=True)
class NodeTableSpec:
    """One ``[[data.options.node_tables]]`` entry: an entity type and, optionally, its table."""

    type: str
    path: str = ""  # empty: the ids the edge tables name
    id_column: str = "id"
    text_columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.type in BASE_TYPES or not self.type:
            raise ValueError(
                f"node table {self.path or self.type!r}: entity type {self.type!r} is not a new "
                f"type name (users and items are {BASE_TYPES})"
            )


@dataclass(kw_only=True)
class EdgeTableSpec:
    """One ``[[data.options.edge_tables]]`` entry: a relation's pairs from ``source``-type ids
    (``source_column``) to ``target``-type ids (``target_column``), with an optional weight
    column (finite, >= 0; none: 1 each)."""

    path: str
    source: str
    target: str
    relation: str = ""  # the relation's name, or
    relation_column: str = ""  # a column naming each row's relation (KG triples)
    reverse: str = ""  # the reverse relation's name (default rev_<relation>)
    source_column: str = "src"
    target_column: str = "dst"
    weight_column: str = ""

    def __post_init__(self) -> None:
        if bool(self.relation) == bool(self.relation_column):
            raise ValueError(
                f"edge table {self.path}: give relation (one relation) or relation_column "
                "(a relation per row), one of them"
            )
        if self.relation_column and self.reverse:
            raise ValueError(
                f"edge table {self.path}: reverse names one relation's reverse; with "
                "relation_column each relation's reverse is rev_<relation>"
            )


def table_specs(values: list[dict[str, Any]], cls: type, where: str) -> list:
    """``values`` (TOML tables) as ``cls`` dataclasses, errors naming the entry and key."""
    specs = []
    known = set(cls.__dataclass_fields__)
    for n, value in enumerate(values):
        key = f"{where}[{n}]"
        extra = set(value) - known
        if extra:
            raise ValueError(unknown_keys(extra, known, key))
        try:
            specs.append(cls(**checked_fields(cls, value, key)))
        except TypeError as err:
            raise ValueError(f"{key}: {err}") from None
    return specs


class _EntityIds:
    """The entity types' ids: their tables, and the types an id belongs to."""

    def __init__(self, specs: Sequence[NodeTableSpec]):
        self.tables: dict[str, NodeTable | None] = {}
        self.index: dict[str, dict[str, int]] = {}
        self.grown: dict[str, list[str]] = {}
        self.owner: dict[str, tuple[str, str]] = {}  # id -> (type, where it was listed)
        for spec in specs:
            if spec.type in self.tables:
                raise ValueError(
                    f"data.options.node_tables: entity type {spec.type!r} is declared twice"
                )
            table = None
            if spec.path:
                table = read_node_rows(Path(spec.path), spec.id_column, spec.text_columns)
                for node in table.ids:
                    self._own(node, spec.type, spec.path)
            self.tables[spec.type] = table
            self.index[spec.type] = {} if table is None else {n: i for i, n in enumerate(table.ids)}
            self.grown[spec.type] = []

    def _own(self, node: str, node_type: str, where: str) -> None:
        other = self.owner.setdefault(node, (node_type, where))
        if other[0] != node_type:
            raise DataError(
                f"entity id {node!r} is a {node_type} and a {other[0]} (listed in {other[1]}): "
                "entity ids are one namespace across entity types; give them distinct ids "
                "(e.g. prefixed by their type)",
                where,
            )

    def lookup(self, node_type: str, node: str, path: Path, line: int) -> int:
        index = self.index[node_type]
        if node in index:
            return index[node]
        if self.tables[node_type] is not None:
            raise DataError(f"unknown {node_type} {node!r} (not in its node table)", path, line)
        self._own(node, node_type, f"{path}:{line}")
        index[node] = len(index)
        self.grown[node_type].append(node)
        return index[node]

    def node_tables(self) -> dict[str, NodeTable]:
        return {
            t: table if table is not None else NodeTable(self.grown[t])
            for t, table in self.tables.items()
        }


def read_relation_tables(
    graph: TextGraph,
    node_specs: Sequence[NodeTableSpec],
    edge_specs: Sequence[EdgeTableSpec],
) -> None:
    """Adds the entity types of ``node_specs`` and the relations of ``edge_specs`` to
    ``graph`` (its ``entities`` and ``relation_edges``), checked: an unknown endpoint type,
    an id missing from its table, an empty id, a bad weight, a relation name used with two
    pairs of endpoint types, a relation with no edges, an entity id under two types."""
    entities = _EntityIds(node_specs)
    ids = {
        "user": {n: i for i, n in enumerate(graph.users.ids)},
        "item": {n: i for i, n in enumerate(graph.items.ids)},
    }
    known = [*BASE_TYPES, *entities.tables]
    parts: dict[str, dict[str, Any]] = {}
    for spec in edge_specs:
        path = Path(spec.path)
        for end in (spec.source, spec.target):
            if end not in known:
                raise DataError(
                    f"edge table endpoint type {end!r} does not exist; node types: {known} "
                    "(declare an entity type in [[data.options.node_tables]])",
                    path,
                )
        columns = [spec.source_column, spec.target_column]
        columns += [c for c in (spec.relation_column, spec.weight_column) if c]
        roles = {spec.source_column: "id", spec.target_column: "id"}
        for line, row in rows(path, columns, roles):
            ends = []
            for end, column in (
                (spec.source, spec.source_column),
                (spec.target, spec.target_column),
            ):
                node = row[column].strip()
                if not node:
                    raise DataError(f"empty {column}", path, line)
                if end in ids:
                    if node not in ids[end]:
                        raise DataError(f"unknown {end} {node!r}", path, line)
                    ends.append(ids[end][node])
                else:
                    ends.append(entities.lookup(end, node, path, line))
            name = spec.relation or row[spec.relation_column].strip()
            if not name:
                raise DataError(f"empty {spec.relation_column}", path, line)
            part = parts.setdefault(
                name,
                {"ends": (spec.source, spec.target, spec.reverse), "where": path, "pairs": []},
            )
            if part["ends"][:2] != (spec.source, spec.target):
                raise DataError(
                    f"relation {name!r} links {spec.source} -> {spec.target} here and "
                    f"{part['ends'][0]} -> {part['ends'][1]} in {part['where']}: a relation "
                    "name has one pair of endpoint types",
                    path,
                    line,
                )
            weight = (
                parse_weight(row[spec.weight_column], spec.weight_column, path, line)
                if spec.weight_column
                else None
            )
            part["pairs"].append((*ends, weight))
    graph.entities = entities.node_tables()
    graph.relation_edges = [
        _relation_edges(name, part["ends"], part["pairs"], part["where"])
        for name, part in parts.items()
    ]
    graph._validate_relations()


def _relation_edges(
    name: str, ends: tuple[str, str, str], pairs: list[tuple], where: Path
) -> RelationEdges:
    source, target, reverse = ends
    edges = np.asarray([p[:2] for p in pairs], dtype=np.int64).T
    weights = [p[2] for p in pairs]
    weight = None
    if any(w is not None for w in weights):
        weight = np.asarray([1.0 if w is None else w for w in weights], dtype=np.float32)
    return RelationEdges(Relation(name, source, target, reverse), edges, weight, str(where))
