"""gnnrec's stores behind PyG's remote-backend interfaces, and one coercion for every graph
format PyG users hold.

- :class:`PyGGraphStore` is a ``torch_geometric.data.GraphStore`` over a
  :class:`~gnnrec.data.graph_store.GraphStore`: our CSR (rows are message targets, indices are
  sources) *is* PyG's CSC layout (compressed by destination), so PyG reads it with no copy,
  memory-mapped graphs included.
- :class:`PyGFeatureStore` is a ``torch_geometric.data.FeatureStore`` over named tensors or
  NumPy arrays (a memory-mapped ``features.npy`` from ``gnnrec encode`` stays on disk; only the
  rows a batch asks for are read).

- :class:`PyGHeteroGraphStore` is the same over a user–item store seen by type
  (:mod:`gnnrec.data.hetero`): ``('user', 'rates', 'item')``, ``('item', 'rated_by', 'user')``
  (and same-type ``links``), each in CSC layout with local ids; :meth:`PyGFeatureStore.hetero`
  holds features per node type (``group_name``).

So ``NeighborLoader((feature_store, graph_store), ...)`` or ``NodeLoader`` with our sampler
(:class:`gnnrec.train.pyg_sampler.PyGNeighborSampler`, and
:class:`~gnnrec.train.pyg_sampler.PyGHeteroNeighborSampler` behind ``NodeLoader`` /
``LinkLoader`` over typed stores) train PyG models on gnnrec's data.
:func:`as_csr` turns a PyG ``EdgeIndex``, an ``edge_index`` tensor, a ``torch.sparse`` matrix or
a ``SparseTensor`` into our :class:`~gnnrec.data.graph_store.CSR`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.data import EdgeAttr, EdgeLayout, TensorAttr
from torch_geometric.data import FeatureStore as _PyGFeatureStore
from torch_geometric.data import GraphStore as _PyGGraphStore

from gnnrec.data.graph_store import CSR, GraphStore
from gnnrec.data.hetero import EdgeType, TypedGraph, TypeNames


def as_csr(graph: Any, num_nodes: int | None = None) -> CSR:
    """Our CSR (rows are message targets) of ``graph``: a :class:`CSR` (returned as is), a
    :class:`GraphStore`, a PyG ``EdgeIndex`` (any sort order), an ``edge_index`` ``[2, E]``
    tensor (``[source; target]``, PyG's convention), a ``torch.sparse`` CSR/COO adjacency or a
    ``torch_sparse.SparseTensor`` (``adj[target, source]``, as PyG's ``adj_t``)."""
    if isinstance(graph, CSR):
        return graph
    if isinstance(graph, GraphStore):
        return graph.csr
    from torch_geometric import EdgeIndex

    if isinstance(graph, EdgeIndex):
        rows, cols = graph.sparse_size()
        num_nodes = num_nodes if num_nodes is not None else max(rows or 0, cols or 0)
        graph = graph.as_tensor()
    if isinstance(graph, torch.Tensor) and graph.layout == torch.strided:
        if graph.dim() != 2 or graph.shape[0] != 2:
            raise ValueError(f"edge_index must have shape [2, E], got {tuple(graph.shape)}")
        n = num_nodes if num_nodes is not None else int(graph.max()) + 1 if graph.numel() else 0
        return CSR.from_edges(graph[1], graph[0], n, n, coalesce=False)
    if isinstance(graph, torch.Tensor):  # torch.sparse adjacency adj[target, source]
        coo = graph.to_sparse_coo().coalesce()
        rows, cols = coo.shape
        return CSR.from_edges(coo.indices()[0], coo.indices()[1], rows, cols, coalesce=False)
    if type(graph).__name__ == "SparseTensor":
        row, col, _ = graph.coo()
        rows, cols = graph.sparse_sizes()
        return CSR.from_edges(row, col, rows, cols, coalesce=False)
    raise TypeError(f"cannot read a graph from {type(graph).__name__}")


class PyGGraphStore(_PyGGraphStore):
    """A read-only PyG ``GraphStore`` holding one homogeneous graph (``edge_type`` None) in
    CSC layout: ``(row = source indices [E], colptr [N + 1])`` from our CSR."""

    def __init__(self, store: GraphStore):
        super().__init__()
        self.store = store
        n = store.num_nodes
        self._attr = EdgeAttr(None, EdgeLayout.CSC, is_sorted=True, size=(n, n))

    def _put_edge_index(self, edge_index, edge_attr: EdgeAttr) -> bool:
        raise NotImplementedError("PyGGraphStore is read-only: build a gnnrec GraphStore")

    def _get_edge_index(self, edge_attr: EdgeAttr):
        if edge_attr.edge_type is not None or edge_attr.layout != EdgeLayout.CSC:
            return None
        csr = self.store.csr
        return csr.indices.long(), csr.indptr

    def _remove_edge_index(self, edge_attr: EdgeAttr) -> bool:
        return False

    def get_all_edge_attrs(self) -> list[EdgeAttr]:
        return [self._attr]


class PyGHeteroGraphStore(_PyGGraphStore):
    """A read-only PyG ``GraphStore`` of a user–item store by edge type (CSC layout, local ids
    of each node type; see :class:`~gnnrec.data.hetero.TypedGraph`): a pure user–item graph's
    ``rates`` CSC is a slice of our CSR; each type is built once, on first use."""

    def __init__(self, store: GraphStore | TypedGraph, names: TypeNames | None = None):
        super().__init__()
        self.typed = store if isinstance(store, TypedGraph) else TypedGraph(store, names)
        self._cache: dict[EdgeType, tuple[torch.Tensor, torch.Tensor]] = {}

    def _put_edge_index(self, edge_index, edge_attr: EdgeAttr) -> bool:
        raise NotImplementedError("PyGHeteroGraphStore is read-only: build a gnnrec GraphStore")

    def _get_edge_index(self, edge_attr: EdgeAttr):
        edge_type = edge_attr.edge_type
        if edge_type not in self.typed.edge_types or edge_attr.layout != EdgeLayout.CSC:
            return None
        if edge_type not in self._cache:
            self._cache[edge_type] = self.typed.csc(edge_type)
        return self._cache[edge_type]

    def _remove_edge_index(self, edge_attr: EdgeAttr) -> bool:
        return False

    def get_all_edge_attrs(self) -> list[EdgeAttr]:
        typed = self.typed
        return [
            EdgeAttr(
                t,
                EdgeLayout.CSC,
                is_sorted=True,
                size=(typed.num_nodes(t[0]), typed.num_nodes(t[2])),
            )
            for t in typed.edge_types
        ]


class PyGFeatureStore(_PyGFeatureStore):
    """A PyG ``FeatureStore`` of node attributes: homogeneous (``group_name`` None), e.g.
    ``PyGFeatureStore(x=features, y=labels)``, or per node type with :meth:`hetero`; NumPy
    arrays (memory maps too) are read per batch, only the asked rows."""

    def __init__(self, **tensors: torch.Tensor | np.ndarray):
        super().__init__()
        self.tensors: dict[tuple[str | None, str], torch.Tensor | np.ndarray] = {
            (None, name): t for name, t in tensors.items()
        }

    @staticmethod
    def hetero(groups: dict[str, dict[str, torch.Tensor | np.ndarray]]) -> PyGFeatureStore:
        """Attributes per node type: ``{"user": {"x": ...}, "item": {"x": ...}}``."""
        store = PyGFeatureStore()
        for group, tensors in groups.items():
            store.tensors.update({(group, name): t for name, t in tensors.items()})
        return store

    @staticmethod
    def _key(attr: TensorAttr) -> tuple[str | None, str]:
        return attr.group_name, attr.attr_name

    def _put_tensor(self, tensor, attr: TensorAttr) -> bool:
        self.tensors[self._key(attr)] = tensor
        return True

    def _get_tensor(self, attr: TensorAttr) -> torch.Tensor | None:
        source = self.tensors.get(self._key(attr))
        if source is None:
            return None
        index = attr.index if attr.is_set("index") else None
        if isinstance(source, np.ndarray):
            rows = source if index is None else source[np.asarray(index)]
            return torch.from_numpy(np.ascontiguousarray(rows))
        return source if index is None else source[index]

    def _remove_tensor(self, attr: TensorAttr) -> bool:
        return self.tensors.pop(self._key(attr), None) is not None

    def _get_tensor_size(self, attr: TensorAttr) -> tuple[int, ...] | None:
        source = self.tensors.get(self._key(attr))
        return None if source is None else tuple(source.shape)

    def get_all_tensor_attrs(self) -> list[TensorAttr]:
        return [TensorAttr(group, name) for group, name in self.tensors]
