"""Structure operations on a CSR that the kernels, the graph store and the models share: each
edge's row, the transpose, and the GCN degree scales. One implementation of each.

Shapes: ``indptr`` int64 ``[N + 1]``, ``indices`` int32/int64 ``[E]`` (columns in ``[0, M)``).
"""

from __future__ import annotations

import warnings
import weakref

import torch

DEGREE_CHUNK = 1 << 24  # edges counted at a time by gcn_scales


def edge_rows(indptr: torch.Tensor) -> torch.Tensor:
    """The row of every edge, int64 ``[E]``."""
    rows = torch.arange(indptr.numel() - 1, device=indptr.device)
    return torch.repeat_interleave(rows, indptr[1:] - indptr[:-1])


def transpose_csr(
    indptr: torch.Tensor, indices: torch.Tensor, num_cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``A^T`` as ``(indptr [M + 1], indices [E], perm [E])``: edge ``k`` of ``A^T`` is edge
    ``perm[k]`` of ``A``. Rows of ``A^T`` list their columns in increasing order when ``A``'s
    rows are sorted (a stable sort by column keeps the row order)."""
    columns = indices.long()
    perm = torch.argsort(columns, stable=True)
    t_indptr = torch.zeros(num_cols + 1, dtype=torch.int64, device=indptr.device)
    t_indptr[1:] = torch.cumsum(torch.bincount(columns, minlength=num_cols), 0)
    return t_indptr, edge_rows(indptr).index_select(0, perm), perm


def same_structure(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    other_indptr: torch.Tensor,
    other_indices: torch.Tensor,
) -> bool:
    """Whether two CSRs hold the same edges in the same order (index dtypes may differ): with
    the transpose as ``other``, structural symmetry (with multiplicities)."""
    if indices.dtype != other_indices.dtype:
        indices, other_indices = indices.long(), other_indices.long()
    return bool(torch.equal(indptr, other_indptr) and torch.equal(indices, other_indices))


def inverse_sqrt_degree(degree: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``d^-1/2`` in ``dtype``, 0 where ``d = 0`` (isolated nodes get no message)."""
    degree = degree.to(dtype)
    return torch.where(degree > 0, degree.clamp(min=1e-30).rsqrt(), torch.zeros_like(degree))


def row_sums(indptr: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``sum_{e in row i} values_e`` ``[N]`` float64: a row's weighted (in-)degree."""
    return torch.zeros(indptr.numel() - 1, dtype=torch.float64, device=values.device).index_add_(
        0, edge_rows(indptr), values.to(torch.float64)
    )


def gcn_scales(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    num_cols: int,
    values: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D_r^-1/2 [N], D_c^-1/2 [M])``: row (in-)degrees and column (out-)degrees, so that
    ``D_r^-1/2 A D_c^-1/2 X = r * (A (c * X))`` needs no per-edge values. With edge
    ``values`` ``[E]`` (weights ``w``), the weighted degrees ``d_i = sum_j w_ij`` (PyG's
    ``gcn_norm`` with ``edge_weight``, on a symmetric graph)."""
    if values is not None:
        col_degree = torch.zeros(num_cols, dtype=torch.float64, device=indices.device)
        col_degree.index_add_(0, indices.long(), values.to(torch.float64))
        return inverse_sqrt_degree(row_sums(indptr, values)), inverse_sqrt_degree(col_degree)
    col_degree = torch.zeros(num_cols, dtype=torch.int64, device=indices.device)
    for start in range(0, indices.numel(), DEGREE_CHUNK):  # int64 copies of a chunk only
        col_degree += torch.bincount(
            indices[start : start + DEGREE_CHUNK].long(), minlength=num_cols
        )
    return inverse_sqrt_degree(indptr[1:] - indptr[:-1]), inverse_sqrt_degree(col_degree)


def row_block(
    indptr: torch.Tensor, indices: torch.Tensor, start: int, end: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows ``start..end-1`` as a CSR over only the columns they read: ``(indptr [R + 1] from
    0, indices [E_b] local to sources, sources [S])`` with ``sources`` the sorted global
    columns, so ``y[start:end] = A_b x[sources]`` reads ``S`` rows of ``x``, not all ``M``."""
    lo, hi = int(indptr[start]), int(indptr[end])
    sources, local = torch.unique(indices[lo:hi].long(), return_inverse=True)
    return indptr[start : end + 1] - lo, local.to(indices.dtype), sources


def csr_tensor(
    indptr: torch.Tensor, indices: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """A ``torch.sparse_csr_tensor`` of our CSR with ``values`` ``[E]`` (invariants not checked:
    the aggregation entry point validates the CSR)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and tested here
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            indptr, indices.to(indptr.dtype), values, shape, check_invariants=False
        )


# id(indices) -> (a weak reference to it, {(rows, cols): transpose_csr's result})
_TRANSPOSES: dict[int, tuple[weakref.ref, dict[tuple[int, int], tuple[torch.Tensor, ...]]]] = {}


def cached_transpose(
    indptr: torch.Tensor, indices: torch.Tensor, num_cols: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`transpose_csr`, computed once per ``indices`` tensor and shape while it lives
    (the layers aggregating over one graph share it)."""
    key = id(indices)
    entry = _TRANSPOSES.get(key)
    if entry is None or entry[0]() is not indices:
        entry = (weakref.ref(indices), {})
        _TRANSPOSES[key] = entry
        weakref.finalize(indices, _TRANSPOSES.pop, key, None)
    shape = (indptr.numel() - 1, num_cols)
    if shape not in entry[1]:
        entry[1][shape] = transpose_csr(indptr, indices, num_cols)
    return entry[1][shape]
