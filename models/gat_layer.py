"""One graph-attention layer (GAT, Velickovic et al. 2018) over a
:class:`~gnnrec.models.graph_view.GraphView`, ``H`` heads concatenated:

.. math::
    \\mathbf{g} = \\Theta \\mathbf{h}, \\quad
    \\mathbf{h}'_{i} = \\big\\Vert_{k=1}^{H} \\sum_{j \\in N(i)} \\alpha^k_{ij}\\, \\mathbf{g}^k_j,
    \\quad \\alpha^k_{ij} = \\operatorname{softmax}_j \\operatorname{LeakyReLU}(
        \\mathbf{a}^k_{dst} \\cdot \\mathbf{g}^k_i + \\mathbf{a}^k_{src} \\cdot \\mathbf{g}^k_j)

(PyG's ``GATConv`` with ``add_self_loops=False``; ``Theta`` is the identity when ``weight`` is
off, the heads then splitting the width). Shapes: ``h`` ``[M, F_in]`` (the view's columns), the
targets' ``[N, F_in]`` (default: the first ``N`` rows of ``h``, as in a square or trimmed
view) -> ``[N, F_out]``, ``F_out = H * (F_out / H)``. The aggregation is
:func:`gnnrec.kernels.aggregate` with ``reduce="attention"``: per-edge memory ``[E, H]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gnnrec.kernels import aggregate
from gnnrec.kernels.attention import EdgeAttention
from gnnrec.models.graph_view import GraphView


class GATLayer(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        heads: int = 2,
        *,
        weight: bool = True,
        negative_slope: float = 0.2,
        dropout: float = 0.0,
    ):
        super().__init__()
        if heads < 1 or out_features % heads:
            raise ValueError(f"out_features ({out_features}) must split into {heads} heads")
        if not weight and in_features != out_features:
            raise ValueError("a layer without weight keeps the width: in_features == out_features")
        self.heads, self.negative_slope, self.dropout = heads, negative_slope, dropout
        width = out_features // heads
        self.weight = nn.Parameter(torch.empty(out_features, in_features)) if weight else None
        self.att_src = nn.Parameter(torch.empty(heads, width))
        self.att_dst = nn.Parameter(torch.empty(heads, width))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and attention vectors (PyG's ``GATConv`` initialisation)."""
        if self.weight is not None:
            nn.init.xavier_uniform_(self.weight)
        for att in (self.att_src, self.att_dst):
            bound = math.sqrt(6.0 / (att.shape[0] + att.shape[1]))
            nn.init.uniform_(att, -bound, bound)

    def values(self, h: torch.Tensor) -> torch.Tensor:
        """The messages ``g = Theta h`` ``[M, F_out]`` the attention weights (``h`` itself
        without ``weight``)."""
        return h if self.weight is None else nn.functional.linear(h, self.weight)

    def edge_weights(
        self, h: torch.Tensor, view: GraphView, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``alpha`` ``[E, H]``: each edge's attention weight per head, as :meth:`forward`
        computes and uses it (``h'_i = ||_k sum_{e = (i, j)} alpha_ek (Theta h_j)^k``)."""
        return self(h, view, targets, return_attention=True)[1]

    def forward(
        self,
        h: torch.Tensor,
        view: GraphView,
        targets: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``h'`` ``[N, F_out]``; with ``return_attention``, also the weights ``alpha``
        ``[E, H]`` (detached, in the view's edge order, before dropout) that the kernel computed
        and used."""
        num_rows = view.csr.num_rows
        targets = h[:num_rows] if targets is None else targets
        heads, width = self.heads, self.att_src.shape[1]
        g = self.values(h)
        if self.weight is None:
            src = (h.view(-1, heads, width) * self.att_src).sum(-1)
            dst = (targets.view(-1, heads, width) * self.att_dst).sum(-1)
        else:
            # a . (W h) = (a^T W) h: [n, H] logit terms from the inputs, without [n, H, F]
            # products forward or backward
            w = self.weight.view(heads, width, -1)
            src = nn.functional.linear(h, torch.einsum("hf,hfi->hi", self.att_src, w))
            dst = nn.functional.linear(targets, torch.einsum("hf,hfi->hi", self.att_dst, w))
        attention = EdgeAttention(
            src,
            dst,
            negative_slope=self.negative_slope,
            dropout=self.dropout if self.training else 0.0,
            generator=generator,
            record=return_attention,
        )
        out = aggregate(
            view.csr.indptr,
            view.csr.indices,
            g,
            reduce="attention",
            attention=attention,
            validate=False,
        )
        return (out, attention.weights) if return_attention else out
