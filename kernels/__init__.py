"""Sparse aggregation: one entry point, :func:`aggregate`, with interchangeable backends.

The ``torch`` backend (:mod:`gnnrec.kernels.reference`) runs anywhere and is the oracle; the
``sparse`` backend (:mod:`gnnrec.kernels.sparse_aggregate`, ``torch.sparse.mm``) is the CPU
default; a ``triton`` backend (:mod:`gnnrec.kernels.triton_aggregate`) registers itself in
:data:`BACKENDS` when Triton imports, and ``backend="auto"`` picks it for CUDA inputs. On the
CPU it runs only under the Triton interpreter (``TRITON_INTERPRET=1`` set before Triton is
imported), as the tests do. ``reduce="attention"`` has backends of its own
(:data:`ATTENTION_BACKENDS`: :mod:`gnnrec.kernels.attention` on the CPU,
:mod:`gnnrec.kernels.triton_attention` for CUDA). CSR structure helpers (transpose, GCN
scales) are in :mod:`gnnrec.kernels.csr`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch

from gnnrec.kernels.attention import EdgeAttention, aggregate_attention_torch
from gnnrec.kernels.reference import aggregate_reference
from gnnrec.kernels.sparse_aggregate import aggregate_sparse_mm

REDUCTIONS = ("sum", "mean", "max")
BACKENDS: dict[str, Callable[..., torch.Tensor]] = {
    "torch": aggregate_reference,
    "sparse": aggregate_sparse_mm,
}
# reduce="attention" (:mod:`gnnrec.kernels.attention`): backend -> (indptr, indices, x, attention)
ATTENTION_BACKENDS: dict[str, Callable[..., torch.Tensor]] = {
    "torch": aggregate_attention_torch,
    "sparse": aggregate_attention_torch,
}


def _aggregate_triton(*args, **kwargs) -> torch.Tensor:
    """Imports Triton on first use, so CPU-only work never pays for it."""
    from gnnrec.kernels.triton_aggregate import aggregate_triton

    return aggregate_triton(*args, **kwargs)


def _attention_triton(*args, **kwargs) -> torch.Tensor:
    from gnnrec.kernels.triton_attention import aggregate_attention_triton

    return aggregate_attention_triton(*args, **kwargs)


if importlib.util.find_spec("triton") is not None:
    BACKENDS["triton"] = _aggregate_triton
    ATTENTION_BACKENDS["triton"] = _attention_triton


def validate_csr(indptr: torch.Tensor, indices: torch.Tensor, num_cols: int) -> None:
    """Raises ``ValueError`` saying what is wrong with a CSR: dtypes, monotonicity, range."""
    if indptr.dtype != torch.int64 or indptr.dim() != 1 or indptr.numel() < 1:
        raise ValueError(
            f"indptr must be a 1-D int64 tensor of N + 1 offsets, got "
            f"{indptr.dtype} with shape {tuple(indptr.shape)}"
        )
    if indices.dtype not in (torch.int32, torch.int64) or indices.dim() != 1:
        raise ValueError(f"indices must be a 1-D int32 or int64 tensor, got {indices.dtype}")
    if indices.dtype == torch.int32 and num_cols > 2**31 - 1:
        raise ValueError(f"{num_cols} columns overflow int32 indices; pass int64 indices")
    if int(indptr[0]) != 0 or int(indptr[-1]) != indices.numel():
        raise ValueError(
            f"indptr must start at 0 and end at the number of indices "
            f"({indices.numel()}), got {int(indptr[0])}..{int(indptr[-1])}"
        )
    steps = indptr[1:] - indptr[:-1]
    if steps.numel() and int(steps.min()) < 0:
        row = int(torch.nonzero(steps < 0)[0])
        raise ValueError(f"indptr decreases at row {row}: it must be non-decreasing")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_cols):
        bad = int(torch.nonzero((indices < 0) | (indices >= num_cols))[0])
        raise ValueError(f"indices[{bad}] = {int(indices[bad])} is outside [0, {num_cols})")


def aggregate(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    *,
    edge_values: torch.Tensor | None = None,
    reduce: str = "sum",
    row_scale: torch.Tensor | None = None,
    col_scale: torch.Tensor | None = None,
    attention: EdgeAttention | None = None,
    backend: str = "auto",
    validate: bool = True,
    **backend_options,
) -> torch.Tensor:
    """``y_i = r_i * reduce_{(i,j)} (w_ij c_j x_j)``: the aggregation every GCN layer calls;
    ``reduce="attention"``: ``y_i = sum_j alpha_ij x_j`` per head with the softmax weights
    ``attention`` defines (:mod:`gnnrec.kernels.attention`; no ``w``, ``r``, ``c``).

    Shapes: ``indptr`` ``[N + 1]``, ``indices`` ``[E]``, ``x`` ``[M, F]`` -> ``[N, F]``.
    ``backend``: ``"auto"`` (triton for CUDA tensors when registered, else sparse) or a key of
    :data:`BACKENDS` (:data:`ATTENTION_BACKENDS` for attention); ``backend_options`` go to
    that backend (the triton backends' tile schedule and tile sizes, see
    :func:`gnnrec.kernels.triton_aggregate.aggregate_triton`).
    """
    if reduce not in (*REDUCTIONS, "attention"):
        raise ValueError(f"unknown reduce {reduce!r}; choose one of {(*REDUCTIONS, 'attention')}")
    if x.dim() != 2:
        raise ValueError(f"x must be [M, F], got shape {tuple(x.shape)}")
    if reduce == "attention":
        return _attend(indptr, indices, x, attention, backend, validate, backend_options)
    if validate:
        validate_csr(indptr, indices, x.shape[0])
        for name, t, n in (
            ("edge_values", edge_values, indices.numel()),
            ("row_scale", row_scale, indptr.numel() - 1),
            ("col_scale", col_scale, x.shape[0]),
        ):
            if t is not None and t.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    if backend == "auto":
        backend = "triton" if x.is_cuda and "triton" in BACKENDS else "sparse"
    if backend not in BACKENDS:
        raise ValueError(f"unknown aggregation backend {backend!r}; have {sorted(BACKENDS)}")
    return BACKENDS[backend](
        indptr,
        indices,
        x,
        edge_values=edge_values,
        reduce=reduce,
        row_scale=row_scale,
        col_scale=col_scale,
        **backend_options,
    )


def _attend(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    attention: EdgeAttention | None,
    backend: str,
    validate: bool,
    backend_options: dict,
) -> torch.Tensor:
    if attention is None:
        raise ValueError("reduce='attention' needs attention=EdgeAttention(src, dst, ...)")
    heads = attention.src.shape[1] if attention.src.dim() == 2 else 0
    if validate:
        validate_csr(indptr, indices, x.shape[0])
        for name, t, n in (("src", attention.src, x.shape[0]), ("dst", attention.dst, None)):
            n = indptr.numel() - 1 if n is None else n
            if t.shape != (n, heads) or heads < 1:
                raise ValueError(
                    f"attention.{name} must have shape ({n}, heads), got {tuple(t.shape)}"
                )
    if heads < 1 or x.shape[1] % heads:
        raise ValueError(f"x has {x.shape[1]} columns: not a multiple of {heads} heads")
    if backend == "auto":
        backend = "triton" if x.is_cuda and "triton" in ATTENTION_BACKENDS else "sparse"
    if backend not in ATTENTION_BACKENDS:
        raise ValueError(
            f"unknown attention backend {backend!r}; have {sorted(ATTENTION_BACKENDS)}"
        )
    return ATTENTION_BACKENDS[backend](indptr, indices, x, attention, **backend_options)


__all__ = [
    "ATTENTION_BACKENDS",
    "BACKENDS",
    "REDUCTIONS",
    "EdgeAttention",
    "aggregate",
    "aggregate_reference",
    "validate_csr",
]
