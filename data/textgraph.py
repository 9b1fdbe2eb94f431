"""The TextGraph: users and items with text, the interactions between them, and features.

Users are indexed ``0..U-1`` and items ``0..I-1``; the homogeneous graph used for training puts
users first and items after them (node ``U + i`` is item ``i``), then the nodes of any entity
types (category, tag, KG entity; see :class:`~gnnrec.data.hetero.GraphSchema`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from gnnrec.data.errors import DataError
from gnnrec.data.hetero import GraphSchema, Relation


@dataclass
class NodeTable:
    """External ids of one node type and their text fields (one sequence per field, one value
    per node): lists, or :class:`~gnnrec.data.columns.TextColumn` for large tables."""

    ids: Sequence[str]
    text_fields: dict[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, values in self.text_fields.items():
            if len(values) != len(self.ids):
                raise ValueError(
                    f"text field {name!r} has {len(values)} values for {len(self.ids)} nodes"
                )

    def __len__(self) -> int:
        return len(self.ids)

    def text(self, i: int, fields: list[str] | None = None) -> str:
        """Node ``i``'s text: its non-empty fields as ``"Field: value."`` sentences."""
        names = fields or list(self.text_fields)
        return sentences(names, [self.text_fields[name][i] for name in names])

    def texts(self) -> list[str]:
        """Every node's :meth:`text`, in node order."""
        names = list(self.text_fields)
        if not names:
            return [""] * len(self)
        return [sentences(names, values) for values in zip(*self.text_fields.values())]


def sentences(names: list[str], values: Sequence[str]) -> str:
    return " ".join(
        f"{name.capitalize()}: {value.strip()}."
        for name, value in zip(names, values)
        if value.strip()
    )


@dataclass
class Interactions:
    """``E`` user–item interactions as parallel arrays (rating 1.0 and timestamp 0 if unknown);
    ``weight``: each interaction's edge weight (``data.edge_weight``; None: unweighted)."""

    user: np.ndarray  # int64 [E]
    item: np.ndarray  # int64 [E]
    rating: np.ndarray  # float32 [E]
    timestamp: np.ndarray  # int64 [E]
    weight: np.ndarray | None = None  # float32 [E]

    def __post_init__(self) -> None:
        self.user = np.asarray(self.user, dtype=np.int64)
        self.item = np.asarray(self.item, dtype=np.int64)
        self.rating = np.asarray(self.rating, dtype=np.float32)
        self.timestamp = np.asarray(self.timestamp, dtype=np.int64)
        if self.weight is not None:
            self.weight = np.asarray(self.weight, dtype=np.float32)
        n = len(self.user)
        arrays = (self.item, self.rating, self.timestamp, self.weight)
        if not all(a is None or len(a) == n for a in arrays):
            raise ValueError("interaction arrays must have equal lengths")

    def __len__(self) -> int:
        return len(self.user)

    def last_of_each_pair(self) -> np.ndarray:
        """Indices ``[E']`` (in order) of one interaction per distinct (user, item) pair: the
        latest by timestamp, the later row on ties.

        One sort of the pair keys finds the repeated pairs; only their rows are ordered by
        timestamp (a log without repeats costs the one sort)."""
        key = self.user * (int(self.item.max(initial=0)) + 1) + self.item
        order = np.argsort(key)
        key = key[order]
        repeated = np.zeros(len(key), dtype=bool)  # in a run of two or more equal keys
        same = key[1:] == key[:-1]
        repeated[1:] |= same
        repeated[:-1] |= same
        del same
        if not repeated.any():
            return np.arange(len(key))
        rows, keys = order[repeated], key[repeated]
        last = np.lexsort((rows, self.timestamp[rows], keys))
        is_last = np.r_[keys[last[1:]] != keys[last[:-1]], True]
        return np.sort(np.concatenate([order[~repeated], rows[last[is_last]]]))

    def subset(self, index: np.ndarray) -> Interactions:
        return Interactions(
            self.user[index],
            self.item[index],
            self.rating[index],
            self.timestamp[index],
            None if self.weight is None else self.weight[index],
        )

    @staticmethod
    def concat(parts: list[Interactions]) -> Interactions:
        """The parts one after another (weights kept when every part has them)."""
        weighted = all(p.weight is not None for p in parts)
        return Interactions(
            *(
                np.concatenate([getattr(p, k) for p in parts])
                for k in ("user", "item", "rating", "timestamp")
            ),
            np.concatenate([p.weight for p in parts]) if weighted and parts else None,
        )


@dataclass
class RelationEdges:
    """The edges of one :class:`~gnnrec.data.hetero.Relation`: ``edges`` ``[2, E]`` int64
    ``[source; target]`` ids local to their node types, ``weight`` ``[E]`` float32 (None: 1
    each); ``where``: the file(s) they came from, for errors."""

    relation: Relation
    edges: np.ndarray
    weight: np.ndarray | None = None
    where: str = ""


@dataclass
class TextGraph:
    """A user–item graph with node text, optional same-type edges and a slot for node features.

    ``user_edges``/``item_edges`` are ``[2, E']`` int64 arrays of internal ids, with their
    weights ``user_edge_weight``/``item_edge_weight`` ``[E']`` float32 (None: 1 each);
    ``user_features`` ``[U, F]`` and ``item_features`` ``[I, F]`` are filled by an encoder.
    """

    name: str
    users: NodeTable
    items: NodeTable
    interactions: Interactions
    user_edges: np.ndarray | None = None
    item_edges: np.ndarray | None = None
    user_features: torch.Tensor | None = None
    item_features: torch.Tensor | None = None
    user_edge_weight: np.ndarray | None = None
    item_edge_weight: np.ndarray | None = None
    # entity types after the items (type -> its nodes) and the relations beyond user–item
    entities: dict[str, NodeTable] = field(default_factory=dict)
    relation_edges: list[RelationEdges] = field(default_factory=list)
    entity_features: torch.Tensor | None = None  # [K, F], every entity type in order

    def __post_init__(self) -> None:
        self.validate()

    @property
    def schema(self) -> GraphSchema:
        """The entity types (with their counts) and the extra relations."""
        return GraphSchema(
            tuple((t, len(table)) for t, table in self.entities.items()),
            tuple(part.relation for part in self.relation_edges),
        )

    @property
    def num_entities(self) -> int:
        return sum(len(table) for table in self.entities.values())

    def entity(self, k: int) -> tuple[str, str]:
        """``(type, id)`` of entity node ``k`` (global node ``U + I + k``)."""
        for node_type, table in self.entities.items():
            if k < len(table):
                return node_type, table.ids[k]
            k -= len(table)
        raise IndexError(f"entity node {k} out of range ({self.num_entities} entities)")

    def node_count(self, node_type: str) -> int:
        """How many nodes of ``node_type`` (``user``, ``item`` or an entity type)."""
        counts = {"user": self.num_users, "item": self.num_items}
        counts |= {t: len(table) for t, table in self.entities.items()}
        return counts[node_type]

    @property
    def num_users(self) -> int:
        return len(self.users)

    @property
    def num_items(self) -> int:
        return len(self.items)

    def validate(self) -> None:
        """Raises :class:`DataError` naming the first interaction that points outside the tables."""
        inter = self.interactions
        for kind, ids, n in (
            ("user", inter.user, self.num_users),
            ("item", inter.item, self.num_items),
        ):
            bad = np.flatnonzero((ids < 0) | (ids >= n))
            if len(bad):
                raise DataError(
                    f"interaction {bad[0]} refers to {kind} {ids[bad[0]]}, but there "
                    f"are {n} {kind}s",
                    self.name,
                )
        if not np.isfinite(inter.rating).all():
            bad = int(np.flatnonzero(~np.isfinite(inter.rating))[0])
            raise DataError(f"interaction {bad} has a non-finite rating", self.name)
        for kind, edges, weight, n in (
            ("user", self.user_edges, self.user_edge_weight, self.num_users),
            ("item", self.item_edges, self.item_edge_weight, self.num_items),
        ):
            if edges is not None and (
                edges.ndim != 2
                or edges.shape[0] != 2
                or (edges.size and (edges.min() < 0 or edges.max() >= n))
            ):
                raise DataError(
                    f"{kind}-{kind} edges must be a [2, E] array of ids < {n}", self.name
                )
            if weight is not None and (
                edges is None
                or weight.shape != (edges.shape[1],)
                or not np.isfinite(weight).all()
                or (weight < 0).any()
            ):
                raise DataError(
                    f"{kind}-{kind} edge weights must be one finite value >= 0 per edge",
                    self.name,
                )
        self._validate_relations()

    def _validate_relations(self) -> None:
        """The extra relations: known endpoint types (:class:`GraphSchema`), ids in range,
        weights finite and >= 0, at least one edge each."""
        try:
            _ = self.schema
        except ValueError as err:
            raise DataError(str(err), self.name) from None
        for part in self.relation_edges:
            r, where = part.relation, part.where or self.name
            edges = np.asarray(part.edges)
            if edges.ndim != 2 or edges.shape[0] != 2 or edges.shape[1] == 0:
                raise DataError(
                    f"relation {r.name!r} has no edges (a [2, E] array with E > 0 is needed)",
                    where,
                )
            for row, end in enumerate((r.source, r.target)):
                n = self.node_count(end)
                if edges[row].min() < 0 or edges[row].max() >= n:
                    raise DataError(f"relation {r.name!r}: a {end} id outside 0..{n - 1}", where)
            weight = part.weight
            if weight is not None and (
                weight.shape != (edges.shape[1],)
                or not np.isfinite(weight).all()
                or (weight < 0).any()
            ):
                raise DataError(
                    f"relation {r.name!r}: edge weights must be one finite value >= 0 per edge",
                    where,
                )
