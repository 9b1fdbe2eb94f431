"""The ``sparse`` backend: sum and mean aggregation through ``torch.sparse.mm`` on a CSR tensor
(MKL on the CPU), about 10x faster than gather + ``index_add_`` on the CPU for the same math:

.. math::
    y = r \\odot \\big(A_w (c \\odot x)\\big), \\qquad r_i \\leftarrow r_i / \\deg_i
    \\text{ for mean}

Max, trainable edge values and dtypes that the sparse routines do not cover go to the torch
reference, so every call gives the reference's result. The gradient for ``x`` is
``A_w^T (grad)``, a ``torch.sparse.mm`` too, through a transpose built on the first backward
and kept while the CSR's ``indices`` tensor lives (unit edge values): the layers aggregating
over one (sampled) graph share it, where autograd through ``torch.sparse.mm`` would transpose
the CSR again for each (bit-identical results).
"""

from __future__ import annotations

import warnings
import weakref

import torch

from gnnrec.kernels.csr import transpose_csr
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
    adjacency = _csr_tensor(indptr, indices, values, (num_rows, x.shape[0]))
    source = x if col_scale is None else x * col_scale.to(x.dtype).unsqueeze(-1)
    if not (torch.is_grad_enabled() and source.requires_grad):
        out = torch.sparse.mm(adjacency, source)
    elif edge_values is None:
        out = _SparseProduct.apply(
            adjacency, lambda: _unit_transpose(indptr, indices, x.shape[0], x.dtype), source
        )
    else:
        out = _SparseProduct.apply(
            adjacency, lambda: _transpose(indptr, indices, values, x.shape[0]), source
        )
    scale = None if row_scale is None else row_scale.to(x.dtype)
    if reduce == "mean":
        inverse_degree = 1.0 / (indptr[1:] - indptr[:-1]).clamp(min=1).to(x.dtype)
        scale = inverse_degree if scale is None else scale * inverse_degree
    return out if scale is None else out * scale.unsqueeze(-1)


def _csr_tensor(
    indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and tested here
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            indptr,
            indices.to(indptr.dtype),
            values,
            shape,
            check_invariants=False,  # the entry point validates the CSR
        )


def _transpose(
    indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, num_cols: int
) -> torch.Tensor:
    """``A_w^T`` ``[M, N]`` as a sparse CSR tensor."""
    t_indptr, t_indices, perm = transpose_csr(indptr, indices, num_cols)
    return _csr_tensor(t_indptr, t_indices, values[perm], (num_cols, indptr.numel() - 1))


# id(indices) -> (a weak reference to it, {dtype: A^T with unit values})
_UNIT_TRANSPOSES: dict[int, tuple[weakref.ref, dict[torch.dtype, torch.Tensor]]] = {}


def _unit_transpose(
    indptr: torch.Tensor, indices: torch.Tensor, num_cols: int, dtype: torch.dtype
) -> torch.Tensor:
    """``A^T`` with unit values, built once per ``indices`` tensor and dtype while it lives."""
    key = id(indices)
    entry = _UNIT_TRANSPOSES.get(key)
    if entry is None or entry[0]() is not indices:
        entry = (weakref.ref(indices), {})
        _UNIT_TRANSPOSES[key] = entry
        weakref.finalize(indices, _UNIT_TRANSPOSES.pop, key, None)
    if dtype not in entry[1]:
        ones = torch.ones(indices.numel(), dtype=dtype, device=indices.device)
        entry[1][dtype] = _transpose(indptr, indices, ones, num_cols)
    return entry[1][dtype]


class _SparseProduct(torch.autograd.Function):
    """``y = A_w x`` (``A_w`` constant); the backward multiplies by ``transposed()``."""

    @staticmethod
    def forward(ctx, adjacency, transposed, source):
        ctx.transposed = transposed
        return torch.sparse.mm(adjacency, source)

    @staticmethod
    def backward(ctx, grad):
        return None, None, torch.sparse.mm(ctx.transposed(), grad)
