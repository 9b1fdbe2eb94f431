"""What a layer propagates over: a CSR (rows are message targets) with its GCN scales."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gnnrec.data.graph_store import CSR
from gnnrec.kernels.csr import gcn_scales


@dataclass
class GraphView:
    """A CSR to propagate over with its scales: ``row_scale = D_r^-1/2`` (in-degree of each
    target) ``[N]``, ``col_scale = D_c^-1/2`` (out-degree of each source) ``[M]``, 0 for
    degree 0."""

    csr: CSR
    row_scale: torch.Tensor
    col_scale: torch.Tensor

    @staticmethod
    def of(graph: CSR | object) -> GraphView:
        """The view of our CSR, or of any graph :func:`~gnnrec.data.pyg_stores.as_csr` reads
        (a PyG ``EdgeIndex``, an ``edge_index``, a sparse adjacency)."""
        if not isinstance(graph, CSR):
            from gnnrec.data.pyg_stores import as_csr

            graph = as_csr(graph)
        return GraphView(graph, *gcn_scales(graph.indptr, graph.indices, graph.num_cols))

    def to(self, device: torch.device) -> GraphView:
        """This view on ``device`` (itself when already there)."""
        if self.row_scale.device == torch.device(device):
            return self
        return GraphView(self.csr.to(device), self.row_scale.to(device), self.col_scale.to(device))
