"""A user–item :class:`~gnnrec.data.graph_store.GraphStore` seen as PyG sees a heterogeneous graph:
node types ``user``, ``item`` and any entity types (:class:`GraphSchema`) with their own local ids,
and edge types as PyG's ``(source type, relation, destination type)`` triples.

The store keeps one CSR over all nodes (users ``0..U-1``, items ``U..U+I-1``, then the entities;
rows are message targets) and, with entity relations, each edge's relation. An edge type is the
edges from one node type into another: in CSR order they are PyG's CSC of that type (compressed by
destination), which is the order of every per-type edge list here (:meth:`TypedGraph.csc`,
``to_hetero``, the hetero sampler's ``e_id``), so an edge attribute such as ``edge_weight`` lines up
with all of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # (graph_store makes its HeteroData with this module)
    from gnnrec.data.graph_store import GraphStore

EdgeType = tuple[str, str, str]
# The relations of a user-item store, numbered by (target is an item, source is an item):
# user -> user links, item -> user (rated_by), user -> item (rates), item -> item links
NUM_RELATIONS = 4
RELATION_NAMES = ("user_links", "rated_by", "rates", "item_links")  # in relation-id order
RATED_BY = RELATION_NAMES.index("rated_by")  # a user's edges from their items
BASE_TYPES = ("user", "item")


@dataclass(frozen=True)
class Relation:
    """A relation beyond the user–item ones: edges from ``source``-type nodes to
    ``target``-type nodes (``user``, ``item`` or an entity type), called ``name``, and the
    same pairs the other way, called ``reverse``. In a graph its edges are relation
    ``NUM_RELATIONS + 2 k`` (messages from source to target) and its reverse ``... + 1``."""

    name: str
    source: str
    target: str
    reverse: str = ""

    def __post_init__(self) -> None:
        if not self.reverse:
            object.__setattr__(self, "reverse", f"rev_{self.name}")

    @property
    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("name", "source", "target", "reverse")}


@dataclass(frozen=True)
class GraphSchema:
    """The node types after users and items and the relations beyond the user–item ones.

    Node order: users ``0..U-1``, items ``U..U+I-1``, then each entity type's nodes in
    ``entity_types`` order (``(type, count)`` pairs). Relation ids: :data:`RELATION_NAMES`,
    then each of ``relations`` as ``(name, reverse)``."""

    entity_types: tuple[tuple[str, int], ...] = ()
    relations: tuple[Relation, ...] = field(default=())

    def __post_init__(self) -> None:
        types = [t for t, _ in self.entity_types]
        for t, count in self.entity_types:
            if t in BASE_TYPES or types.count(t) > 1 or not t or count < 0:
                raise ValueError(
                    f"entity type {t!r} (count {count}): entity types need distinct names "
                    f"other than {BASE_TYPES} and a count >= 0"
                )
        known = (*BASE_TYPES, *types)
        names = list(RELATION_NAMES)
        for relation in self.relations:
            for end in (relation.source, relation.target):
                if end not in known:
                    raise ValueError(
                        f"relation {relation.name!r}: unknown node type {end!r}; node types "
                        f"are {list(known)} (declare an entity type with a node table)"
                    )
            for name in (relation.name, relation.reverse):
                if name in names:
                    raise ValueError(
                        f"relation name {name!r} is taken (relations: {names}); each relation "
                        "and reverse needs its own name"
                    )
                names.append(name)

    @property
    def num_entities(self) -> int:
        return sum(count for _, count in self.entity_types)

    @property
    def relation_names(self) -> tuple[str, ...]:
        """Every relation's name, in relation-id order."""
        extra = (name for r in self.relations for name in (r.name, r.reverse))
        return (*RELATION_NAMES, *extra)

    @property
    def num_relations(self) -> int:
        return NUM_RELATIONS + 2 * len(self.relations)

    def node_types(self) -> list[str]:
        return [*BASE_TYPES, *(t for t, _ in self.entity_types)]

    def offsets(self, num_users: int, num_items: int) -> dict[str, tuple[int, int]]:
        """``{type: (first global id, count)}`` over every node type."""
        spans = {"user": (0, num_users), "item": (num_users, num_items)}
        start = num_users + num_items
        for t, count in self.entity_types:
            spans[t] = (start, count)
            start += count
        return spans

    def to_json(self) -> dict:
        return {
            "entity_types": [list(t) for t in self.entity_types],
            "relations": [r.as_dict for r in self.relations],
        }

    @staticmethod
    def from_json(value: dict | None) -> GraphSchema:
        if not value:
            return GraphSchema()
        return GraphSchema(
            tuple((t, int(n)) for t, n in value["entity_types"]),
            tuple(Relation(**r) for r in value["relations"]),
        )


@dataclass(frozen=True)
class TypeNames:
    """The names PyG sees: the two node types and the relation of each edge type."""

    user: str = "user"
    item: str = "item"
    rates: str = "rates"  # user -> item
    rated_by: str = "rated_by"  # item -> user
    user_links: str = "links"  # user -> user (data.options user_edges_path)
    item_links: str = "links"  # item -> item (item_edges_path)


def base_relations(targets: torch.Tensor, sources: torch.Tensor, num_users: int) -> torch.Tensor:
    """``[E]`` int8: the user–item relation of edges between users and items (ids below
    ``num_users`` are users): ``2 * (target is an item) + (source is an item)``."""
    return 2 * (targets >= num_users).to(torch.int8) + (sources >= num_users).to(torch.int8)


class TypedGraph:
    """``store`` by node and edge type (see the module docstring); only the edge types that
    have edges are listed (both directions of the user–item relation always)."""

    def __init__(self, store: GraphStore, names: TypeNames | None = None):
        if not store.num_users:
            raise ValueError("a typed view needs a user-item store (num_users > 0)")
        self.store, self.names = store, names or TypeNames()
        self.schema = store.schema
        self.num_users, self.num_items = store.num_users, store.num_items
        entity_types = [t for t, _ in self.schema.entity_types]
        clash = {self.names.user, self.names.item} & set(entity_types)
        if clash or self.names.user == self.names.item:
            raise ValueError(f"node type names must differ: {self.names} and {entity_types}")
        spans = self.schema.offsets(self.num_users, self.num_items)
        self._spans = {self.names.user: spans["user"], self.names.item: spans["item"]}
        self._spans |= {t: spans[t] for t in entity_types}

    @property
    def node_types(self) -> list[str]:
        return list(self._spans)

    def _span(self, node_type: str) -> tuple[int, int]:
        if node_type not in self._spans:
            raise ValueError(f"unknown node type {node_type!r}; have {self.node_types}")
        return self._spans[node_type]

    def num_nodes(self, node_type: str) -> int:
        return self._span(node_type)[1]

    def offset(self, node_type: str) -> int:
        """The global id of the type's local id 0."""
        return self._span(node_type)[0]

    def type_index(self, nodes: torch.Tensor) -> torch.Tensor:
        """``[n]`` int64: each global node's position in :attr:`node_types`."""
        starts = torch.tensor([start for start, _ in self._spans.values()][1:])
        return torch.bucketize(nodes.long(), starts, right=True)

    @property
    def relation(self) -> torch.Tensor:
        """``[E]`` int8: every CSR edge's relation (ids as :attr:`GraphSchema.relation_names`)."""
        return self._edge_kind

    @functools.cached_property
    def _edge_kind(self) -> torch.Tensor:
        csr = self.store.csr
        if csr.relation is not None:
            return csr.relation
        return base_relations(csr.row_ids(), csr.indices.long(), self.num_users)

    def _kinds(self) -> dict[EdgeType, int]:
        n = self.names
        kinds = {
            (n.user, n.rates, n.item): 2,
            (n.item, n.rated_by, n.user): 1,
            (n.user, n.user_links, n.user): 0,
            (n.item, n.item_links, n.item): 3,
        }
        rename = {"user": n.user, "item": n.item}
        for k, r in enumerate(self.schema.relations):
            source, target = rename.get(r.source, r.source), rename.get(r.target, r.target)
            kinds[(source, r.name, target)] = NUM_RELATIONS + 2 * k
            kinds[(target, r.reverse, source)] = NUM_RELATIONS + 2 * k + 1
        return kinds

    @functools.cached_property
    def edge_types(self) -> list[EdgeType]:
        present = set(torch.unique(self._edge_kind).tolist())
        return [t for t, kind in self._kinds().items() if kind in present or kind in (1, 2)]

    def kind(self, edge_type: EdgeType) -> int:
        kinds = self._kinds()
        if tuple(edge_type) not in kinds:
            raise ValueError(f"unknown edge type {edge_type!r}; have {self.edge_types}")
        return kinds[tuple(edge_type)]

    @functools.cached_property
    def type_rank(self) -> torch.Tensor:
        """``[E]`` int64: each CSR edge's position in its edge type's CSC."""
        rank = torch.empty(self.store.num_edges, dtype=torch.int64)
        for kind in range(self.schema.num_relations):
            mask = self._edge_kind == kind
            rank[mask] = torch.arange(int(mask.sum()))
        return rank

    def positions(self, edge_type: EdgeType) -> torch.Tensor:
        """The CSR positions ``[E_t]`` of the type's edges, in its CSC order."""
        return torch.nonzero(self._edge_kind == self.kind(edge_type)).flatten()

    def csc(self, edge_type: EdgeType) -> tuple[torch.Tensor, torch.Tensor]:
        """``(row [E_t], colptr [D + 1])``: PyG's CSC of the type, sources and destinations in
        their types' local ids."""
        kind = self.kind(edge_type)
        src, _, dst = edge_type
        csr = self.store.csr
        start, end = self.offset(dst), self.offset(dst) + self.num_nodes(dst)
        lo, hi = int(csr.indptr[start]), int(csr.indptr[end])
        indptr = csr.indptr[start : end + 1] - lo
        indices = csr.indices[lo:hi].long()
        keep = self._edge_kind[lo:hi] == kind
        if bool(keep.all()):  # a pure user-item graph: a slice of the CSR
            return indices - self.offset(src), indptr
        rows = torch.repeat_interleave(torch.arange(end - start), indptr.diff())[keep]
        colptr = torch.zeros(end - start + 1, dtype=torch.int64)
        colptr[1:] = torch.cumsum(torch.bincount(rows, minlength=end - start), 0)
        return indices[keep] - self.offset(src), colptr

    def edge_index(self, edge_type: EdgeType) -> torch.Tensor:
        """``[2, E_t]`` ``[source; destination]`` in local ids, in the type's CSC order."""
        row, colptr = self.csc(edge_type)
        return torch.stack(
            [row, torch.repeat_interleave(torch.arange(colptr.numel() - 1), colptr.diff())]
        )

    def edge_weight(self, edge_type: EdgeType) -> torch.Tensor | None:
        """The type's edge weights ``[E_t]`` in its CSC order (None when unweighted)."""
        values = self.store.csr.values
        return None if values is None else values[self.positions(edge_type)]
