"""The text-feature GCN recommender.

Layer 0 places every node from its text features and, optionally, a learned ID embedding:
``h^0_v = W x_v + b + m_v e_v`` where ``m_v`` is 0 for nodes without training edges (their ID
rows never get a gradient) and for ID-dropped nodes during training, so that text alone learns
to place a node (cold start). ``L`` layers of graph convolution follow,

.. math::
    \\mathbf{h}^{l+1} = \\Theta_l \\big(D_r^{-1/2} A D_c^{-1/2} \\mathbf{h}^l\\big)

(sum aggregation; ``mean`` and ``max`` use no degree scaling; ``\\Theta_l`` is the identity
unless ``conv_weights``), combined LightGCN-style as the mean of ``h^0..h^L`` or as ``h^L``.
Scores are dot products ``s(u, i) = z_u . z_i``; the rating head adds ``mu + b_u + b_i``.
LightGCN and MF are this model restricted (each checks that it is exactly that).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from gnnrec.common.row_ranges import row_ranges
from gnnrec.data.graph_store import CSR
from gnnrec.data.hetero import NUM_RELATIONS
from gnnrec.kernels.csr import inverse_sqrt_degree, row_block
from gnnrec.models.config import ModelConfig, register_model
from gnnrec.models.gcn_layer import GCNLayer
from gnnrec.models.graph_view import GraphView
from gnnrec.models.node_inputs import TextAndIDRecommender
from gnnrec.models.relational_layer import RelationalGCNLayer


def _lightgcn_only(config: ModelConfig) -> None:
    if not (config.pure_ids and config.aggregation == "sum" and config.layer_combination == "mean"):
        raise ValueError(
            "lightgcn means id_embeddings only, sum aggregation, layer mean "
            "and no conv_weights; use name = 'gcn' for variations"
        )


def _mf_only(config: ModelConfig) -> None:
    if not (config.pure_ids and config.layers == 0):
        raise ValueError("mf means id_embeddings only and layers = 0")


@register_model("mf", label="MF", check=_mf_only)
@register_model("lightgcn", label="LightGCN", check=_lightgcn_only)
@register_model("gcn", label="GCN")
class GCNRecommender(TextAndIDRecommender):
    """Users ``0..U-1``, items ``U..U+I-1`` and any entity nodes after them in one node
    space (see module docstring)."""

    # layers that read their targets' rows and have no column scales (attention)
    ATTENDS: ClassVar[bool] = False

    def __init__(
        self,
        config: ModelConfig,
        num_users: int,
        num_items: int,
        feature_dim: int,
        draw_id_table: bool = True,
        num_entities: int = 0,
        num_relations: int = NUM_RELATIONS,
    ):
        """``draw_id_table``, ``num_entities``: see :meth:`TextAndIDRecommender._init_inputs`;
        ``num_relations``: the graph's relations (``relations = "typed"``)."""
        super().__init__()
        self.num_relations = num_relations
        self._init_inputs(
            config, num_users, num_items, feature_dim, config.hidden, draw_id_table, num_entities
        )
        self.convs = nn.ModuleList(self.make_layer(config.hidden) for _ in range(config.layers))
        self._init_rating_head()

    def make_layer(self, width: int) -> nn.Module:
        """One propagation layer of ``width`` in and out: a graph convolution (one per relation
        with ``relations = "typed"``)."""
        config = self.config
        if config.relations == "typed":
            return RelationalGCNLayer(
                width,
                width,
                self.num_relations,
                config.aggregation,
                weight=config.conv_weights,
                bases=config.relation_bases,
                kernel=config.relation_kernel,
            )
        return GCNLayer(width, width, config.aggregation, weight=config.conv_weights)

    def propagate(
        self,
        h0: torch.Tensor,
        view: GraphView,
        source_mask: torch.Tensor | None = None,
        noise: float = 0.0,
    ) -> torch.Tensor:
        """``z = combine(h^0, ..., h^L)`` ``[n, H]`` over the graph ``view`` (rows = targets):
        ``h^L``, or the mean ``(h^0 + ... + h^L) / (L + 1)`` summed as the layers come (no
        ``[L + 1, n, H]`` stack). Over a sampled view with ``hops``, ``z`` of the seeds only
        ``[view.within(0), H]``, layer ``l`` computed for the nodes within hop ``L - l``.
        ``source_mask`` ``[n]`` (0 or 1): ``h^0`` is ``source_mask * h0``, the mask applied
        in layer 1's column scales and to the rows ``z`` keeps (``sum`` aggregation).
        ``noise`` ``eps > 0``: SimGCL's perturbation of every layer's output,
        ``h^l + eps sign(h^l) * u / ||u||`` with ``u ~ U(0, 1)^H`` a row (drawn from torch's
        generator), before the next layer reads it."""
        L = len(self.convs)
        out = view.within(0)  # every row without hops
        total, h = _first(h0, out), h0
        if source_mask is not None:
            total = total * _first(source_mask, out).unsqueeze(-1).to(h0.dtype)
        for layer, conv in enumerate(self.convs, start=1):
            layer_view = view.layer_view(layer, L)
            if layer == 1 and source_mask is not None:
                layer_view = layer_view.scaled_sources(source_mask)
            h = conv(_first(h, layer_view.csr.num_cols), layer_view)
            if noise:
                h = h + noise * torch.sign(h) * F.normalize(torch.rand_like(h), dim=-1)
            total = total + _first(h, out)
        if self.config.layer_combination == "last":
            return _first(h, out)
        return total / (L + 1)

    def forward(
        self,
        n_id: torch.Tensor,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor | None = None,
        noise: float = 0.0,
    ) -> torch.Tensor:
        """Final embeddings ``[n, H]`` of the nodes ``n_id`` of a (sub)graph ``view`` (of its
        seeds, its first ``view.within(0)`` nodes, for a sampled view with ``hops``);
        ``noise``: SimGCL's perturbation (:meth:`propagate`)."""
        scaled = self.config.aggregation == "sum" and len(self.convs) and not self.ATTENDS
        if id_mask is not None and self.project is None and scaled:
            # IDs only, h^0 = m * e: the mask (0 or 1) scales layer 1's columns instead of the
            # [n, H] rows, forward and backward (the same numbers)
            h0 = self.layer0(n_id, x, None)
            return self.propagate(h0, view, source_mask=id_mask, noise=noise)
        return self.propagate(self.layer0(n_id, x, id_mask), view, noise=noise)

    @property
    def propagates(self) -> bool:
        return len(self.convs) > 0

    @property
    def own_layer0_share(self) -> float | None:
        """``c`` in ``z_u = c h^0_u + (terms of u's neighbours only)``: how a node's own layer 0
        enters its final embedding (convolutions read only a node's neighbours): ``1 / (L + 1)``
        for the layer mean, 0 for the last layer; None with attention, which reads it."""
        if self.ATTENDS:
            return None
        return 0.0 if self.config.layer_combination == "last" else 1.0 / (len(self.convs) + 1)

    @torch.no_grad()
    def layer_states(
        self, n_id: torch.Tensor, x: torch.Tensor | None, view: GraphView, id_mask: torch.Tensor
    ) -> list[torch.Tensor]:
        """The inputs ``[h^0, ..., h^{L-1}]`` ``[n, H]`` of each layer over the whole graph
        ``view``, as :meth:`forward` computes them (what :meth:`fold_in` reads)."""
        h = self.layer0(n_id, x, id_mask)
        states = [h]
        for conv in self.convs[:-1]:
            h = conv(h, view)
            states.append(h)
        return states

    def fold_in(
        self,
        h0: torch.Tensor,
        neighbors: CSR,
        states: list[torch.Tensor],
        col_scale: torch.Tensor,
        relation_col_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final embeddings ``[B, H]`` of ``B`` nodes placed into the trained graph: ``h0``
        ``[B, H]`` their layer 0, ``neighbors`` a CSR of ``B`` rows over ``M`` columns whose
        layer inputs are ``states[l]`` ``[M, H]`` and scales ``col_scale`` ``[M]`` (held at
        their trained values; with typed relations, ``neighbors.relation`` and each relation's
        column scales ``relation_col_scale`` ``[R, M]``). Each layer is the model's own, over
        the rows' edges:

        .. math::
            h^{l+1}_u = \\Theta_l\\big(d_u^{-1/2} \\textstyle\\sum_{j \\in N(u)} d_j^{-1/2}
            h^l_j\\big), \\quad d_u = |N(u)|

        (attention reads ``h^l_u`` as its target row), combined as in :meth:`propagate`.
        Differentiable in ``h0`` (a new user's ID row can be fitted through it)."""
        view = GraphView(neighbors, inverse_sqrt_degree(neighbors.weighted_degree()), col_scale)
        if relation_col_scale is not None:
            view = view.held_columns(relation_col_scale)
        h, total = h0, h0
        for conv, inputs in zip(self.convs, states):
            targets = {"targets": h} if self.ATTENDS else {}
            h = conv(inputs, view, **targets)
            total = total + h
        if self.config.layer_combination == "last":
            return h
        return total / (len(self.convs) + 1)

    @torch.no_grad()
    def embed_in_chunks(
        self,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor,
        chunk_nodes: int,
        device: torch.device,
    ) -> torch.Tensor:
        """:meth:`forward` over the whole graph ``view`` (on the host), ``chunk_nodes`` rows at a
        time on ``device``: layer 0 from a chunk of ``x`` ``[N, F]`` (host, pinned or
        memory-mapped), then each layer over blocks of at most ``chunk_nodes`` rows and as many
        edges, from the rows of ``h^l`` the block reads (at most one an edge). Device memory is
        bounded by the chunk, not the graph; host memory holds two ``[N, H]`` float32 buffers
        (three for L >= 3): ``h^l``, and ``h^{l+1}`` or the running sum of the layers, which
        takes over ``h^0``'s buffer and receives the last layer chunk by chunk."""
        n = view.csr.num_rows
        h = torch.empty(n, self.config.hidden)
        for start, end in _chunks(n, chunk_nodes):
            x_chunk = None if x is None else x[start:end].to(device).float()
            nodes = torch.arange(start, end, device=device)
            h[start:end] = self.layer0(nodes, x_chunk, id_mask[start:end].to(device)).cpu()
        host_indptr = view.csr.indptr.cpu().numpy()  # blocks of at most chunk_nodes rows and edges
        mean = self.config.layer_combination != "last"
        total = None  # the running sum of the layers (h^0's buffer once h^1 is computed)
        for layer, conv in enumerate(self.convs):
            last = layer == len(self.convs) - 1
            into_total = last and mean and total is not None
            new = total if into_total else torch.empty_like(h)
            for start, end in row_ranges(host_indptr, chunk_nodes, chunk_nodes):
                indptr, indices, sources = row_block(view.csr.indptr, view.csr.indices, start, end)
                lo, hi = int(view.csr.indptr[start]), int(view.csr.indptr[end])
                fields = view.csr.edge_fields(lambda t, lo=lo, hi=hi: t[lo:hi])
                block = view.block(
                    CSR(indptr, indices, sources.numel(), **fields), slice(start, end), sources
                ).to(device)
                # attention also reads the block's own rows (its targets)
                targets = {"targets": h[start:end].to(device)} if self.ATTENDS else {}
                out = conv(h[sources].to(device), block, **targets).cpu()
                if into_total:
                    new[start:end] += out  # the last layer goes straight into the sum
                else:
                    new[start:end] = out
            if mean and total is None:
                total = h  # h^0 is read no more: it becomes the sum
            if mean and not into_total:
                total += new
            h = new
        if not mean:
            return h
        return (h if total is None else total).div_(len(self.convs) + 1)


def _first(t: torch.Tensor, rows: int) -> torch.Tensor:
    """``t[:rows]``, or ``t`` itself when that is all of it (no slice for autograd to undo
    with a zero-filled copy of ``t``)."""
    return t if t.shape[0] == rows else t[:rows]


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of ``size`` covering ``range(n)``."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]
