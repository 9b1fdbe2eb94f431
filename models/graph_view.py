"""What a layer propagates over: a CSR (rows are message targets) with its GCN scales."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from gnnrec.data.graph_store import CSR
from gnnrec.kernels.csr import gcn_scales, inverse_sqrt_degree


@dataclass
class GraphView:
    """A CSR to propagate over with its scales: ``row_scale = D_r^-1/2`` (in-degree of each
    target) ``[N]``, ``col_scale = D_c^-1/2`` (out-degree of each source) ``[M]``, 0 for
    degree 0; over a weighted CSR (``csr.values``: ``w`` ``[E]``), the weighted degrees
    ``sum_j w_ij``, and the layers multiply each message by its edge's weight.

    Over a CSR with relations (``csr.relation``), also each relation's own scales,
    ``relation_row_scale`` ``[R, N]`` and ``relation_col_scale`` ``[R, M]`` (the degrees
    within relation ``r``), and its edges as a CSR of their own (:meth:`relation_csr`), for
    the typed layers (:mod:`gnnrec.models.relational_layer`).

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
    relation_row_scale: torch.Tensor | None = None
    relation_col_scale: torch.Tensor | None = None

    @staticmethod
    def of(graph: CSR | object, hops: list[int] | tuple[int, ...] | None = None) -> GraphView:
        """The view of our CSR, or of any graph :func:`~gnnrec.data.pyg_stores.as_csr` reads
        (a PyG ``EdgeIndex``, an ``edge_index``, a sparse adjacency); ``hops`` as above."""
        if not isinstance(graph, CSR):
            from gnnrec.data.pyg_stores import as_csr

            graph = as_csr(graph)
        scales = gcn_scales(graph.indptr, graph.indices, graph.num_cols, graph.values)
        view = GraphView(graph, *scales, None if hops is None else tuple(hops))
        if graph.relation is not None:
            per_relation = [
                gcn_scales(csr.indptr, csr.indices, csr.num_cols, csr.values)
                for csr in view.relation_csrs
            ]
            view.relation_row_scale = _stack([r for r, _ in per_relation], graph.num_rows)
            view.relation_col_scale = _stack([c for _, c in per_relation], graph.num_cols)
        return view

    @functools.cached_property
    def relation_parts(self) -> list[tuple[CSR, torch.Tensor]]:
        """The edges of each relation ``0..R-1`` as a CSR over the same rows and columns (in
        the view's edge order) and their positions in the view (:meth:`CSR.by_relation`),
        made once per view."""
        csr = self.csr
        if csr.relation is None:
            return [(csr, torch.arange(csr.num_edges, device=csr.indices.device))]
        return csr.by_relation(int(csr.relation.max()) + 1 if csr.num_edges else 1)

    @property
    def relation_csrs(self) -> list[CSR]:
        """The CSRs of :attr:`relation_parts`."""
        return [part for part, _ in self.relation_parts]

    def relation_view(self, relation: int) -> GraphView | None:
        """Relation ``relation``'s edges with its own scales (None: no such edges here)."""
        if self.relation_row_scale is None:
            return self if relation == 0 else None
        if relation >= len(self.relation_csrs):
            return None
        return GraphView(
            self.relation_csrs[relation],
            self.relation_row_scale[relation],
            self.relation_col_scale[relation],
        )

    def segmented(self, relations: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(indptr [N R + 1], indices [E], order [E])``: this view's edges as one CSR of
        ``N R`` rows, row ``i R + r`` holding row ``i``'s edges of relation ``r`` (in view
        order), ``order`` the view position of each; made once per view and ``relations``."""
        key = f"_segmented_{relations}"
        if key not in self.__dict__:
            csr = self.csr
            relation = (
                torch.zeros(csr.num_edges, dtype=torch.long, device=csr.indices.device)
                if csr.relation is None
                else csr.relation.long()
            )
            segment = csr.row_ids() * relations + relation
            order = torch.argsort(segment, stable=True)
            indptr = torch.zeros(
                csr.num_rows * relations + 1, dtype=torch.int64, device=segment.device
            )
            indptr[1:] = torch.cumsum(
                torch.bincount(segment, minlength=csr.num_rows * relations), 0
            )
            self.__dict__[key] = (indptr, csr.indices[order], order)
        return self.__dict__[key]

    def held_columns(self, relation_col_scale: torch.Tensor) -> GraphView:
        """This view (a CSR with relations) with each relation's row scales from its rows'
        own degrees and its column scales held at ``relation_col_scale`` ``[R, M]``: rows
        placed into a trained graph whose columns keep their degrees (fold-in)."""
        csrs, dtype = self.relation_csrs, self.row_scale.dtype
        rows = [inverse_sqrt_degree(c.weighted_degree(), dtype) for c in csrs]
        view = GraphView(self.csr, self.row_scale, self.col_scale, self.hops)
        view.relation_row_scale = torch.stack(rows).to(self.row_scale.device)
        view.relation_col_scale = relation_col_scale[: len(csrs)]
        view.__dict__["relation_parts"] = self.relation_parts
        return view

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
        return self.block(csr.rows_prefix(rows, cols), slice(0, rows), slice(0, cols))

    def block(self, csr: CSR, rows: slice, cols: slice | torch.Tensor) -> GraphView:
        """The view of ``csr``, some of this view's edges: those of the rows ``rows`` reading
        the columns ``cols`` (a prefix, or the sources a row block reads), every scale taken
        from this view (the degrees of the whole graph)."""
        relation = {}
        if self.relation_row_scale is not None:
            relation = {
                "relation_row_scale": self.relation_row_scale[:, rows],
                "relation_col_scale": self.relation_col_scale[:, cols],
            }
        return GraphView(csr, self.row_scale[rows], self.col_scale[cols], **relation)

    def scaled_sources(self, factor: torch.Tensor) -> GraphView:
        """This view with ``col_scale * factor[:M]``: sources weighted as well as scaled."""
        factor = factor[: self.csr.num_cols].to(self.col_scale.dtype)
        view = GraphView(self.csr, self.row_scale, self.col_scale * factor, self.hops)
        if self.relation_row_scale is not None:
            view.relation_row_scale = self.relation_row_scale
            view.relation_col_scale = self.relation_col_scale * factor
            view.__dict__["relation_parts"] = self.relation_parts  # the same edges
        return view

    def to(self, device: torch.device) -> GraphView:
        """This view on ``device`` (itself when already there)."""
        if self.row_scale.device == torch.device(device):
            return self

        def moved(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return GraphView(
            self.csr.to(device),
            self.row_scale.to(device),
            self.col_scale.to(device),
            self.hops,
            moved(self.relation_row_scale),
            moved(self.relation_col_scale),
        )


def _stack(scales: list[torch.Tensor], size: int) -> torch.Tensor:
    """``[R, size]`` of the relations' scales."""
    return torch.stack(scales) if scales else torch.zeros(0, size)
