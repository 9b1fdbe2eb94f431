"""One typed graph-convolution layer: each relation its own normalisation and its own transform,
summed per destination (R-GCN's form with GCN's normalisation).

.. math::
    \\mathbf{h}'_i = \\sum_r \\Theta_r \\big(D_{r}^{-1/2} A_r D_{r}^{-1/2} \\mathbf{h}\\big)_i,
    \\qquad \\Theta_r = \\sum_b a_{rb} V_b \\ \\text{(with bases)}

``A_r`` the edges of relation ``r`` (weighted when the graph is), ``D_r`` the degrees within
it; ``mean`` aggregation takes each relation's (weighted) mean instead, as PyG's ``RGCNConv``
with ``aggr="mean"``. ``Theta_r`` is a weight per relation, or with ``bases > 0`` a
combination of ``bases`` shared matrices (R-GCN's basis decomposition, for many relations);
without weights (LightGCN) the relations' normalised sums are added. Each relation is one
call of :func:`gnnrec.kernels.aggregate` over its own CSR (:meth:`GraphView.relation_view`),
or, with ``kernel = "segmented"``, one call for all of them over ``N R`` rows (row ``i R + r``:
``i``'s edges of relation ``r``, :meth:`GraphView.segmented`, each edge's coefficient as its
value) and one product with the relations' weights stacked ``[R F_in, F_out]``: fewer, larger
calls for an ``[N R, F_in]`` buffer (``gnnrec bench relations`` measures both).
With one relation the layer is :class:`~gnnrec.models.gcn_layer.GCNLayer`, bit for bit.
Shapes: ``h`` ``[M, F_in]`` -> ``[N, F_out]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gnnrec.kernels import aggregate
from gnnrec.models.gcn_layer import GCNLayer
from gnnrec.models.graph_view import GraphView


class RelationalGCNLayer(nn.Module):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        num_relations: int,
        aggregation: str = "sum",
        *,
        weight: bool = True,
        bases: int = 0,
        kernel: str = "per_relation",
    ):
        super().__init__()
        if kernel not in ("per_relation", "segmented"):
            raise ValueError(f"kernel must be per_relation or segmented, got {kernel!r}")
        self.kernel = kernel
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"typed relations aggregate by sum or mean, not {aggregation!r}")
        if not weight and in_features != out_features:
            raise ValueError("a layer without weight keeps the width: in_features == out_features")
        if bases and not weight:
            raise ValueError("bases decompose the relations' weights: the layer has none")
        if num_relations < 1 or bases < 0:
            raise ValueError("num_relations >= 1 and bases >= 0 are required")
        self.num_relations, self.aggregation = num_relations, aggregation
        shape = (out_features, in_features)
        self.weight = self.basis = self.coefficients = None
        if weight and bases:
            self.basis = nn.Parameter(torch.empty(bases, *shape))
            self.coefficients = nn.Parameter(torch.empty(num_relations, bases))
        elif weight:
            self.weight = nn.Parameter(torch.empty(num_relations, *shape))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s initialisation for every relation's (or basis) matrix."""
        for matrices in (self.weight, self.basis):
            if matrices is not None:
                for m in matrices:
                    nn.init.kaiming_uniform_(m, a=math.sqrt(5))
        if self.coefficients is not None:
            nn.init.uniform_(self.coefficients, -1.0, 1.0)

    def relation_weights(self) -> torch.Tensor | None:
        """``Theta`` ``[R, F_out, F_in]`` (None without weights)."""
        if self.basis is not None:
            return torch.einsum("rb,boi->roi", self.coefficients, self.basis)
        return self.weight

    def values(self, h: torch.Tensor, relation: torch.Tensor | None = None) -> torch.Tensor:
        """``Theta_{r_k} h_k`` ``[n, F_out]``: each row through the weight of its relation
        ``relation[k]`` (``[n]``; rows read along edges of that relation); ``h`` itself
        without weights."""
        theta = self.relation_weights()
        if theta is None:
            return h
        if relation is None:
            raise ValueError("a typed layer's values need each row's relation")
        out = h.new_empty(h.shape[0], theta.shape[1])
        for r in range(self.num_relations):
            at = torch.nonzero(relation == r).flatten()
            out[at] = nn.functional.linear(h[at], theta[r])
        return out

    def edge_weights(
        self, h: torch.Tensor, view: GraphView, targets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``c`` ``[E, 1]`` with ``h'_i = sum_{e = (i, j)} c_e Theta_{r_e} h_j``: each edge's
        coefficient within its relation (:meth:`GCNLayer.coefficients` over the relation's
        view). ``h`` and ``targets`` are unused (the signature of ``GCNLayer.edge_weights``)."""
        dtype = view.row_scale.dtype
        c = torch.zeros(view.csr.num_edges, 1, dtype=dtype, device=view.row_scale.device)
        for r in range(self.num_relations):
            part = view.relation_view(r)
            if part is not None:  # its edges' positions in the view
                c[view.relation_parts[r][1]] = GCNLayer.coefficients(part, self.aggregation)
        return c

    def forward(self, h: torch.Tensor, view: GraphView) -> torch.Tensor:
        if self.kernel == "segmented":
            return self._segmented(h, view)
        theta = self.relation_weights()
        out = None
        for r in range(self.num_relations):
            relation = view.relation_view(r)
            if relation is None:
                continue
            y = GCNLayer.propagate(h, relation, self.aggregation)
            if theta is not None:
                y = nn.functional.linear(y, theta[r])
            out = y if out is None else out + y
        if out is None:  # no relation this layer knows has edges here
            width = h.shape[1] if theta is None else theta.shape[1]
            return h.new_zeros(view.csr.num_rows, width)
        return out

    def _segmented(self, h: torch.Tensor, view: GraphView) -> torch.Tensor:
        """:meth:`forward` as one aggregation over ``N R`` rows and one product."""
        R, rows, width = self.num_relations, view.csr.num_rows, h.shape[1]
        indptr, indices, order = view.segmented(R)
        key = f"_coefficients_{R}_{self.aggregation}"
        if key not in view.__dict__:  # constant per view: each edge's c_e within its relation
            view.__dict__[key] = self.edge_weights(h, view)[order, 0]
        y = aggregate(
            indptr, indices, h, edge_values=view.__dict__[key].to(h.dtype), validate=False
        ).view(rows, R * width)
        theta = self.relation_weights()
        if theta is None:
            return y.view(rows, R, width).sum(1)
        return y @ theta.permute(0, 2, 1).reshape(R * width, -1)
