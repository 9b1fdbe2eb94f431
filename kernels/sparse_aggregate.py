"""The ``sparse`` backend: sum and mean aggregation through ``torch.sparse.mm`` on a CSR tensor
(MKL on the CPU), about 10x faster than gather + ``index_add_`` on the CPU for the same math:

.. math::
    y = r \\odot \\big(A_w (c \\odot x)\\big), \\qquad r_i \\leftarrow r_i / \\deg_i
    \\text{ for mean}

Max, trainable edge values and dtypes that the sparse routines do not cover go to the torch
reference, so every call gives the reference's result. Gradients for ``x`` flow through
``torch.sparse.mm``.
"""

from __future__ import annotations

import warnings

import torch

from gnnrec.kernels.reference import aggregate_reference

DTYPES = (torch.float32, torch.float64)


def aggregate_sparse_mm(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    *,
    edge_values: torch.Tensor | None = None,
    reduce: str = "sum",
    row_scale: torch.Tensor | None = None,
    col_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same arguments and result as :func:`gnnrec.kernels.aggregate`."""
    trainable_values = edge_values is not None and edge_values.requires_grad
    if reduce == "max" or trainable_values or x.dtype not in DTYPES:
        return aggregate_reference(
            indptr,
            indices,
            x,
            edge_values=edge_values,
            reduce=reduce,
            row_scale=row_scale,
            col_scale=col_scale,
        )
    num_rows = indptr.numel() - 1
    values = (
        torch.ones(indices.numel(), dtype=x.dtype, device=x.device)
        if edge_values is None
        else edge_values.to(x.dtype)
    )
    with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and tested here
        warnings.simplefilter("ignore", UserWarning)
        adjacency = torch.sparse_csr_tensor(
            indptr,
            indices.to(indptr.dtype),
            values,
            (num_rows, x.shape[0]),
            check_invariants=False,  # the entry point validates the CSR
        )
    source = x if col_scale is None else x * col_scale.to(x.dtype).unsqueeze(-1)
    out = torch.sparse.mm(adjacency, source)
    scale = None if row_scale is None else row_scale.to(x.dtype)
    if reduce == "mean":
        inverse_degree = 1.0 / (indptr[1:] - indptr[:-1]).clamp(min=1).to(x.dtype)
        scale = inverse_degree if scale is None else scale * inverse_degree
    return out if scale is None else out * scale.unsqueeze(-1)
