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
