"""One graph-convolution layer over a :class:`~gnnrec.models.graph_view.GraphView`: the layer
the recommender stacks and the benchmarks train.

.. math::
    \\mathbf{h}' = \\Theta\\big(D_r^{-1/2} A D_c^{-1/2} \\mathbf{h}\\big) (+ \\mathbf{b})

for ``sum`` aggregation; ``mean`` and ``max`` aggregate without the degree scales. Over a
weighted view (edge weights ``w``, ``A_ij = w_ij``, the degrees weighted), ``mean`` is the
weighted mean ``sum_j w_ij h_j / sum_j w_ij`` and ``max`` takes ``max_j w_ij h_j``. ``Theta``
is the identity when ``weight`` is off (LightGCN). Shapes: ``h`` ``[M, F_in]`` (the view's
columns) -> ``[N, F_out]`` (its rows). The aggregation is :func:`gnnrec.kernels.aggregate`
(Triton on a GPU).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gnnrec.kernels import aggregate
from gnnrec.kernels.csr import edge_rows, row_sums
from gnnrec.models.graph_view import GraphView


class GCNLayer(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        aggregation: str = "sum",
        *,
        weight: bool = True,
        bias: bool = False,
    ):
        super().__init__()
        if not weight and in_features != out_features:
            raise ValueError("a layer without weight keeps the width: in_features == out_features")
        self.aggregation = aggregation
        self.weight = nn.Parameter(torch.empty(out_features, in_features)) if weight else None
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation."""
        if self.weight is not None:
            nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight.shape[1]) if self.weight is not None else 0.0
            nn.init.uniform_(self.bias, -bound, bound)

    def values(self, h: torch.Tensor) -> torch.Tensor:
        """``Theta h`` ``[M, F_out]`` (no bias): what each edge carries, scaled by
        :meth:`edge_weights` (``Theta`` commutes with the weighted sum)."""
        return h if self.weight is None else nn.functional.linear(h, self.weight)

    def edge_weights(
        self, h: torch.Tensor, view: GraphView, targets: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """``c`` ``[E, 1]`` with ``h'_i = sum_{e = (i, j)} c_e Theta h_j``: ``r_i c_j`` for
        ``sum``, ``1 / d_i`` for ``mean``; None where the layer is not such a sum (``max``, a
        bias). ``h`` and ``targets`` are unused (the signature of
        :meth:`GATLayer.edge_weights`)."""
        if self.bias is not None or self.aggregation == "max":
            return None
        return self.coefficients(view, self.aggregation)

    @staticmethod
    def coefficients(view: GraphView, aggregation: str) -> torch.Tensor:
        """``c`` ``[E, 1]`` of a ``sum`` or ``mean`` aggregation over ``view`` (see
        :meth:`edge_weights`)."""
        rows, cols = edge_rows(view.csr.indptr), view.csr.indices.long()
        weight = view.csr.values
        if aggregation == "sum":
            c = view.row_scale[rows] * view.col_scale[cols]
            return (c if weight is None else c * weight.to(c.dtype)).unsqueeze(1)
        if weight is None:
            degree = view.csr.degree().to(view.row_scale.dtype)
            return (1.0 / degree[rows]).unsqueeze(1)
        return (weight.to(view.row_scale.dtype) * _inverse_row_sums(view)[rows]).unsqueeze(1)

    @staticmethod
    def propagate(h: torch.Tensor, view: GraphView, aggregation: str) -> torch.Tensor:
        """The aggregation alone, ``[M, F]`` -> ``[N, F]``: ``D_r^-1/2 A D_c^-1/2 h`` for
        ``sum``, the (weighted) mean or the max."""
        scaled = aggregation == "sum"
        reduce, row_scale = aggregation, view.row_scale if scaled else None
        if aggregation == "mean" and view.csr.values is not None:
            reduce, row_scale = "sum", _inverse_row_sums(view)  # the weighted mean
        return aggregate(
            view.csr.indptr,
            view.csr.indices,
            h,
            edge_values=view.csr.values,
            reduce=reduce,
            row_scale=row_scale,
            col_scale=view.col_scale if scaled else None,
            validate=False,
        )

    def forward(self, h: torch.Tensor, view: GraphView) -> torch.Tensor:
        h = self.propagate(h, view, self.aggregation)
        if self.weight is not None:
            h = nn.functional.linear(h, self.weight, self.bias)
        elif self.bias is not None:
            h = h + self.bias
        return h


def _inverse_row_sums(view: GraphView) -> torch.Tensor:
    """``1 / sum_j w_ij`` ``[N]`` float32 of a weighted view (0 for a row without weight)."""
    total = row_sums(view.csr.indptr, view.csr.values)
    return torch.where(total > 0, 1.0 / total.clamp(min=1e-300), 0.0).float()
