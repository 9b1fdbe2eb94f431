"""A user–item :class:`~gnnrec.data.graph_store.GraphStore` seen as PyG sees a heterogeneous
graph: node types ``user`` and ``item`` with their own local ids, and edge types as PyG's
``(source type, relation, destination type)`` triples.

The store keeps one CSR over all nodes (users ``0..U-1``, items ``U..U+I-1``; rows are message
targets). An edge type is the edges from one node type into another: in CSR order they are
PyG's CSC of that type (compressed by destination), which is the order of every per-type
edge list here (:meth:`TypedGraph.csc`, ``to_hetero``, the hetero sampler's ``e_id``), so an
edge attribute such as ``edge_weight`` lines up with all of them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TypeNames:
    """The names PyG sees: the two node types and the relation of each edge type."""

    user: str = "user"
    item: str = "item"
    rates: str = "rates"  # user -> item
    rated_by: str = "rated_by"  # item -> user
    user_links: str = "links"  # user -> user (data.options user_edges_path)
    item_links: str = "links"  # item -> item (item_edges_path)


class TypedGraph:
    """``store`` by node and edge type (see the module docstring); only the edge types that
    have edges are listed (both directions of the user–item relation always)."""

    def __init__(self, store: GraphStore, names: TypeNames | None = None):
        if not store.num_users:
            raise ValueError("a typed view needs a user-item store (num_users > 0)")
        self.store, self.names = store, names or TypeNames()
        self.num_users, self.num_items = store.num_users, store.num_items

    @property
    def node_types(self) -> list[str]:
        return [self.names.user, self.names.item]

    def num_nodes(self, node_type: str) -> int:
        return self.num_users if node_type == self.names.user else self.num_items

    def offset(self, node_type: str) -> int:
        """The global id of the type's local id 0."""
        if node_type not in self.node_types:
            raise ValueError(f"unknown node type {node_type!r}; have {self.node_types}")
        return 0 if node_type == self.names.user else self.num_users

    def node_type_of(self, nodes: torch.Tensor) -> torch.Tensor:
        """``[n]`` bool: which of the global ``nodes`` are items."""
        return nodes >= self.num_users

    @property
    def relation(self) -> torch.Tensor:
        """``[E]`` int8: every CSR edge's relation (:data:`NUM_RELATIONS`)."""
        return self._edge_kind

    @functools.cached_property
    def _edge_kind(self) -> torch.Tensor:
        """``[E]`` int8: ``2 * (target is an item) + (source is an item)`` of every CSR edge."""
        csr = self.store.csr
        target = self.node_type_of(csr.row_ids()).to(torch.int8)
        source = self.node_type_of(csr.indices.long()).to(torch.int8)
        return 2 * target + source

    def _kinds(self) -> dict[EdgeType, int]:
        n = self.names
        return {
            (n.user, n.rates, n.item): 2,
            (n.item, n.rated_by, n.user): 1,
            (n.user, n.user_links, n.user): 0,
            (n.item, n.item_links, n.item): 3,
        }

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
        for kind in range(4):
            mask = self._edge_kind == kind
            rank[mask] = torch.arange(int(mask.sum()))
        return rank

    def positions(self, edge_type: EdgeType) -> torch.Tensor:
        """The CSR positions ``[E_t]`` of the type's edges, in its CSC order."""
        return torch.nonzero(self._edge_kind == self.kind(edge_type)).flatten()

    def csc(self, edge_type: EdgeType) -> tuple[torch.Tensor, torch.Tensor]:
        """``(row [E_t], colptr [D + 1])``: PyG's CSC of the type, sources and destinations in
        their types' local ids."""
        self.kind(edge_type)  # a known type
        src, _, dst = edge_type
        csr = self.store.csr
        start, end = self.offset(dst), self.offset(dst) + self.num_nodes(dst)
        lo = int(csr.indptr[start])
        indptr = csr.indptr[start : end + 1] - lo
        indices = csr.indices[lo : int(csr.indptr[end])].long()
        keep = self.node_type_of(indices) == (src == self.names.item)
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
