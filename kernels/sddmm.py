"""Sampled dense-dense products (SDDMM) in Triton: one value per CSR edge (and head),

.. math::
    o_e = r_i \\, c_j \\, \\langle a_i, b_j \\rangle \\qquad e = (i, j),

used for the gradient of edge values (``a = dY``, ``b = X``) and of attention weights (per
head: ``o_{eh}`` over head ``h``'s columns). Each program takes ``BLOCK_E`` edges of one head
and loops over its features in ``BLOCK_F`` tiles, accumulating in fp32 (fp64 for fp64 inputs).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _sddmm_kernel(
    rows, cols, a, b, row_scale, col_scale, out,
    num_edges, num_features, stride_an, stride_af, stride_bn, stride_bf, num_heads,
    HAS_ROW_SCALE: tl.constexpr, HAS_COL_SCALE: tl.constexpr, ACC_FP64: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr,
):  # fmt: skip
    acc_dtype: tl.constexpr = tl.float64 if ACC_FP64 else tl.float32
    e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    e_mask = e < num_edges
    row = tl.load(rows + e, mask=e_mask, other=0).to(tl.int64)
    col = tl.load(cols + e, mask=e_mask, other=0).to(tl.int64)
    head = tl.program_id(1)  # num_features columns from head * num_features on
    acc = tl.zeros([BLOCK_E], acc_dtype)
    for f0 in range(0, num_features, BLOCK_F):
        f = f0 + tl.arange(0, BLOCK_F)
        mask = e_mask[:, None] & (f < num_features)[None, :]
        f = f + head * num_features
        ta = tl.load(a + row[:, None] * stride_an + f[None, :] * stride_af, mask=mask, other=0.0)
        tb = tl.load(b + col[:, None] * stride_bn + f[None, :] * stride_bf, mask=mask, other=0.0)
        acc += tl.sum(ta.to(acc_dtype) * tb.to(acc_dtype), axis=1)
    if HAS_ROW_SCALE:
        acc = acc * tl.load(row_scale + row, mask=e_mask, other=0.0).to(acc_dtype)
    if HAS_COL_SCALE:
        acc = acc * tl.load(col_scale + col, mask=e_mask, other=0.0).to(acc_dtype)
    tl.store(out + e * num_heads + head, acc.to(out.dtype.element_ty), mask=e_mask)


def sddmm(
    rows: torch.Tensor,
    cols: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    row_scale: torch.Tensor | None = None,
    col_scale: torch.Tensor | None = None,
    out_dtype: torch.dtype | None = None,
    heads: int | None = None,
    block_e: int = 64,
    block_f: int | None = None,
) -> torch.Tensor:
    """``o [E]`` with ``o_e = r[rows_e] c[cols_e] <a[rows_e], b[cols_e]>``; ``a [N, F]``,
    ``b [M, F]``, ``rows``/``cols`` ``[E]`` int32 or int64. ``heads``: ``o [E, H]``, one
    product per head over its ``F / H`` columns."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b need the same feature width, got {a.shape[1]} and {b.shape[1]}")
    num_heads = heads or 1
    if a.shape[1] % num_heads:
        raise ValueError(f"{a.shape[1]} features are not a multiple of {num_heads} heads")
    num_edges, num_features = rows.numel(), a.shape[1] // num_heads
    shape = (num_edges,) if heads is None else (num_edges, num_heads)
    out = torch.empty(shape, dtype=out_dtype or a.dtype, device=a.device)
    if num_edges == 0:
        return out
    block_f = block_f or min(triton.next_power_of_2(max(num_features, 1)), 64)
    dummy = out
    _sddmm_kernel[(triton.cdiv(num_edges, block_e), num_heads)](
        rows, cols, a, b, dummy if row_scale is None else row_scale,
        dummy if col_scale is None else col_scale, out,
        num_edges, num_features, a.stride(0), a.stride(1), b.stride(0), b.stride(1), num_heads,
        HAS_ROW_SCALE=row_scale is not None, HAS_COL_SCALE=col_scale is not None,
        ACC_FP64=a.dtype == torch.float64, BLOCK_E=block_e, BLOCK_F=block_f,
    )  # fmt: skip
    return out
