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
    degree 0; over a weighted CSR (``csr.values``: ``w`` ``[E]``), the weighted degrees
    ``sum_j w_ij``, and the layers multiply each message by its edge's weight.

    ``hops``: for a sampled subgraph whose nodes are numbered by hop (the seeds first, then the
    nodes first reached at hop 1, ...; every edge into a node of hop ``k`` comes from hop
    ``<= k + 1``), the number of nodes within hop ``0, 1, ..., K`` of the seeds. An ``L``-layer
    model then needs layer ``l``'s output only for the nodes within hop ``L - l``
    (:meth:`within`, :meth:`layer_view`): PyG's ``trim_to_layer``, the same numbers for the
    seeds."""

    csr: CSR
    row_scale: torch.Tensor
    col_scale: torch.Tensor
    hops: tuple[int, ...] | None = None

    @staticmethod
    def of(graph: CSR | object, hops: list[int] | tuple[int, ...] | None = None) -> GraphView:
        """The view of our CSR, or of any graph :func:`~gnnrec.data.pyg_stores.as_csr` reads
        (a PyG ``EdgeIndex``, an ``edge_index``, a sparse adjacency); ``hops`` as above."""
        if not isinstance(graph, CSR):
            from gnnrec.data.pyg_stores import as_csr

            graph = as_csr(graph)
        scales = gcn_scales(graph.indptr, graph.indices, graph.num_cols, graph.values)
        return GraphView(graph, *scales, None if hops is None else tuple(hops))

    def within(self, hop: int) -> int:
        """The nodes within ``hop`` hops of the seeds: a prefix of the rows (all of them without
        ``hops``, or past the last hop)."""
        if self.hops is None or hop >= len(self.hops):
            return self.csr.num_rows
        return self.hops[hop]

    def layer_view(self, layer: int, layers: int) -> GraphView:
        """What layer ``layer`` (``1..layers``) of a model propagates over: with ``hops``, the
        first ``within(layers - layer)`` targets, which read only the first
        ``within(layers - layer + 1)`` sources (``csr.num_cols``); else the whole view."""
        if self.hops is None:
            return self
        rows, cols = self.within(layers - layer), self.within(layers - layer + 1)
        csr = self.csr
        if rows == csr.num_rows and cols == csr.num_cols:
            return self
        return GraphView(csr.rows_prefix(rows, cols), self.row_scale[:rows], self.col_scale[:cols])

    def scaled_sources(self, factor: torch.Tensor) -> GraphView:
        """This view with ``col_scale * factor[:M]``: sources weighted as well as scaled."""
        col_scale = self.col_scale * factor[: self.csr.num_cols].to(self.col_scale.dtype)
        return GraphView(self.csr, self.row_scale, col_scale, self.hops)

    def to(self, device: torch.device) -> GraphView:
        """This view on ``device`` (itself when already there)."""
        if self.row_scale.device == torch.device(device):
            return self
        return GraphView(
            self.csr.to(device), self.row_scale.to(device), self.col_scale.to(device), self.hops
        )
