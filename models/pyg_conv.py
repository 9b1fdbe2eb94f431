"""PyG layers whose sparse aggregation is ours: :class:`KernelGCNConv` and :class:`KernelLGConv`
are PyG's ``GCNConv`` and ``LGConv`` (same parameters, same normalisation, same results) with
the fused sparse matmul ``A x`` done by :func:`gnnrec.kernels.aggregate` (Triton on a GPU,
``torch.sparse`` on the CPU) instead of ``torch_geometric.utils.spmm``.

The fused path runs when the graph is a sparse adjacency ``adj_t[target, source]``
(``torch.sparse`` CSR/COO or ``SparseTensor``) or a PyG ``EdgeIndex`` (sorted by destination
on the way in when it is not: its CSC is our CSR); a plain ``edge_index`` tensor takes PyG's
gather/scatter path as before.
"""

from __future__ import annotations

import torch
from torch_geometric import EdgeIndex
from torch_geometric.nn import GCNConv, LGConv

from gnnrec.kernels import aggregate

REDUCE = {"add": "sum", "sum": "sum", "mean": "mean", "max": "max"}


def adjacency_csr(
    adj: object, edge_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(indptr [N + 1], indices [E], values [E] or None)`` with rows = targets from a
    ``torch.sparse`` ``adj_t``, a ``SparseTensor`` ``adj_t`` or an ``EdgeIndex`` sorted by
    destination (``edge_weight`` in the EdgeIndex's edge order)."""
    if isinstance(adj, EdgeIndex):
        if not adj.is_sorted_by_col:
            raise ValueError("an EdgeIndex must be sorted by destination: sort_by('col')")
        (colptr, row), perm = adj.get_csc()
        if edge_weight is not None and perm is not None:
            edge_weight = edge_weight[perm]
        return colptr, row, edge_weight
    if isinstance(adj, torch.Tensor):
        csr = adj if adj.layout == torch.sparse_csr else adj.to_sparse_csr()
        return csr.crow_indices(), csr.col_indices(), csr.values()
    if type(adj).__name__ == "SparseTensor":
        rowptr, col, value = adj.csr()
        return rowptr, col, value
    raise TypeError(f"no sparse adjacency in {type(adj).__name__}")


def _by_destination(module, inputs):
    """A propagate pre-hook: an ``EdgeIndex`` not sorted by destination (``GCNConv``'s added
    self-loops leave it so) is sorted, with its edge weights, so the fused path can run."""
    edge_index, size, kwargs = inputs
    if not isinstance(edge_index, EdgeIndex) or edge_index.is_sorted_by_col:
        return None
    edge_index, perm = edge_index.sort_by("col")
    if perm is not None and kwargs.get("edge_weight") is not None:
        kwargs = {**kwargs, "edge_weight": kwargs["edge_weight"][perm]}
    return edge_index, size, kwargs


class KernelAggregation:
    """Mixin for a PyG ``MessagePassing`` layer whose message is ``w_e x_j`` and whose
    aggregation is a sum, mean or max: ``message_and_aggregate`` by our kernels."""

    SUPPORTS_FUSED_EDGE_INDEX = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_propagate_forward_pre_hook(_by_destination)

    def message_and_aggregate(
        self, edge_index: object, x: torch.Tensor, edge_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        indptr, indices, values = adjacency_csr(edge_index, edge_weight)
        if values is not None and values.dtype != x.dtype:
            values = values.to(x.dtype)
        return aggregate(indptr.long(), indices, x, edge_values=values, reduce=REDUCE[self.aggr])


class KernelGCNConv(KernelAggregation, GCNConv):
    """PyG's ``GCNConv`` with our aggregation (see the module docstring)."""


class KernelLGConv(KernelAggregation, LGConv):
    """PyG's ``LGConv`` (LightGCN's propagation) with our aggregation."""
