"""Pure-torch sparse aggregation: the CPU backend, and the oracle for every other backend.

For a CSR adjacency (row ``i`` lists the sources ``j`` of the messages into ``i``):

.. math::
    \\mathbf{y}_i = r_i \\cdot \\bigoplus_{e = (i, j)} w_e \\, c_j \\, \\mathbf{x}_j

with :math:`\\oplus` one of sum, mean (sum over the degree) or max (elementwise), ``w`` optional
edge values, ``r`` and ``c`` optional per-node scales (``r = c = D^{-1/2}`` gives GCN's
symmetric normalisation). An empty row gives 0 for every reduction (the PyG convention).

Shapes: ``indptr`` ``[N + 1]`` int64, ``indices`` ``[E]`` int32/int64, ``x`` ``[M, F]``,
``edge_values`` ``[E]``, ``row_scale`` ``[N]``, ``col_scale`` ``[M]``; output ``[N, F]`` in the
dtype of ``x``. Gradients flow through torch autograd.
"""

from __future__ import annotations

import torch


def aggregate_reference(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    *,
    edge_values: torch.Tensor | None = None,
    reduce: str = "sum",
    row_scale: torch.Tensor | None = None,
    col_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """``y = r * reduce_j(w * c[j] * x[j])`` over each CSR row; see the module docstring."""
    num_rows = indptr.numel() - 1
    degree = indptr[1:] - indptr[:-1]
    rows = torch.repeat_interleave(torch.arange(num_rows, device=x.device), degree)
    source = x if col_scale is None else x * col_scale.to(x.dtype).unsqueeze(-1)
    messages = source.index_select(0, indices.long())
    if edge_values is not None:
        messages = messages * edge_values.to(x.dtype).unsqueeze(-1)
    out = x.new_zeros((num_rows, x.shape[1]))
    if reduce in ("sum", "mean"):
        out = out.index_add(0, rows, messages)
        if reduce == "mean":
            out = out / degree.clamp(min=1).to(x.dtype).unsqueeze(-1)
    elif reduce == "max":
        index = rows.unsqueeze(-1).expand_as(messages)
        out = out.scatter_reduce(0, index, messages, reduce="amax", include_self=False)
    else:
        raise ValueError(f"unknown reduce {reduce!r}; choose sum, mean or max")
    if row_scale is not None:
        out = out * row_scale.to(x.dtype).unsqueeze(-1)
    return out


def max_gradients_first_tie(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    edge_values: torch.Tensor | None,
    grad_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(dX [M, F], dw [E] or None)`` of the unscaled max aggregation when every output
    element's gradient goes to the *first* edge (in CSR order) attaining its maximum, as our
    kernels route it. Autograd through ``scatter_reduce("amax")`` splits it evenly between tied
    maxima instead: the same function only where no two messages of a row tie, which low
    precision (bf16 messages tie often) does not give. Computed in ``x``'s dtype (use fp64)."""
    num_rows, num_edges = indptr.numel() - 1, indices.numel()
    rows = torch.repeat_interleave(torch.arange(num_rows, device=x.device), indptr.diff())
    cols = indices.long()
    w = None if edge_values is None else edge_values.to(x.dtype)
    messages = x[cols] if w is None else x[cols] * w.unsqueeze(-1)
    out = aggregate_reference(indptr, indices, x, edge_values=edge_values, reduce="max")
    edge = torch.arange(num_edges, device=x.device).unsqueeze(-1).expand_as(messages)
    candidate = torch.where(messages == out[rows], edge, num_edges)
    first = torch.full((num_rows, x.shape[1]), num_edges, device=x.device, dtype=torch.int64)
    first = first.scatter_reduce(0, rows.unsqueeze(-1).expand_as(candidate), candidate, "amin")
    hit = first < num_edges
    out_rows, feats = torch.nonzero(hit, as_tuple=True)
    winners = first[hit]
    g = grad_out.to(x.dtype)[out_rows, feats]
    grad_x = torch.zeros_like(x)
    weight = g if w is None else g * w[winners]
    grad_x.index_put_((cols[winners], feats), weight, accumulate=True)
    grad_w = None
    if w is not None:
        grad_w = torch.zeros(num_edges, dtype=x.dtype, device=x.device)
        grad_w.index_add_(0, winners, g * x[cols[winners], feats])
    return grad_x, grad_w
