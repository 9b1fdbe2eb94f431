"""Attention aggregation (:mod:`gnnrec.kernels.attention`'s math) in Triton, forward and
backward, with per-edge memory ``[E, H]`` and no atomics.

Forward:

1. *Edge softmax* over the tile schedule of :mod:`gnnrec.kernels.schedule`: a row that fits
   in one ``BLOCK_E`` tile gets its logits ``LeakyReLU(dst_i + src_j)``, max, sum and
   ``alpha_e = e^{l_e - m} / s`` in one pass; a longer light row's program takes its tiles
   with an online max and sum (``m' = max(m, max_e l_e)``,
   ``s' = s e^{m - m'} + sum_e e^{l_e - m'}``), then writes ``alpha``; a heavy row's chunks
   each write a partial ``(m, s)``, a combine kernel merges a row's partials in slot order,
   and the chunks then write their ``alpha``. fp32 throughout (fp64 for fp64 logit terms);
   empty rows write nothing.
2. ``y = A_alpha x`` per head: the aggregation kernel with ``[E, H]`` edge values, where
   feature ``f`` takes the weight of head ``f // F``.

Backward (``d`` the dropout factors, ``g`` the upstream gradient):

- ``dx``: the same kernel on the cached transpose, with ``alpha d`` permuted to its edges;
- ``dalpha_eh = d_eh <g_ih, x_jh>``: the per-head SDDMM (:mod:`gnnrec.kernels.sddmm`);
- ``t_ih = sum_e alpha_eh dalpha_eh`` and ``dsrc``/``ddst``, sums of per-edge values over a
  row (or over a column), are aggregations over the CSR whose column indices are the edge
  ids (``arange(E)``; for columns, the transpose's ``perm``): heavy rows chunked and combined
  in a fixed order like every other sum;
- ``ds_eh = alpha_eh (dalpha_eh - t_ih)``, times the slope where ``s_eh <= 0``: one
  elementwise kernel over the edges.

Every sum is over a fixed schedule: runs are bit-identical.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from gnnrec.kernels.attention import EdgeAttention
from gnnrec.kernels.schedule import GraphPlan, ScheduleParams, TileSchedule, plan_for
from gnnrec.kernels.sddmm import sddmm
from gnnrec.kernels.triton_aggregate import Launch, spmm_forward


@triton.jit
def _logits(src, stride_s, dst_row, col, e_mask, h, h_mask, slope, acc_dtype: tl.constexpr):
    """LeakyReLU(dst_i + src_j) ``[BLOCK_E, BLOCK_H]`` for one row's edges (masked edges:
    -inf, masked heads: finite)."""
    term = tl.load(
        src + col[:, None] * stride_s + h[None, :],
        mask=e_mask[:, None] & h_mask[None, :],
        other=0.0,
    ).to(acc_dtype)
    s = term + dst_row[None, :]
    logit = tl.where(s > 0, s, s * slope)
    return tl.where(e_mask[:, None], logit, float("-inf"))


@triton.jit
def _store_alpha(
    indices, src, stride_s, alpha, dst_row, top, total, start, end, h, h_mask, num_heads, slope,
    acc_dtype: tl.constexpr, BLOCK_E: tl.constexpr,
):  # fmt: skip
    for e0 in range(start, end, BLOCK_E):
        e = e0 + tl.arange(0, BLOCK_E)
        e_mask = e < end
        col = tl.load(indices + e, mask=e_mask, other=0).to(tl.int64)
        logit = _logits(src, stride_s, dst_row, col, e_mask, h, h_mask, slope, acc_dtype)
        weight = tl.exp(logit - top[None, :]) / total[None, :]
        tl.store(
            alpha + e[:, None] * num_heads + h[None, :],
            weight,
            mask=e_mask[:, None] & h_mask[None, :],
        )


@triton.jit
def _edge_softmax_kernel(
    program_ptr, item_row, item_start, item_end, item_slot,
    indices, src, dst, alpha, part_max, part_sum,
    num_heads, slope, stride_s, stride_d,
    CHUNKS_ONLY: tl.constexpr, ACC_FP64: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    # CHUNKS_ONLY: the second pass over heavy chunks, whose rows' (max, sum) the combine
    # kernel wrote into every one of their slots.
    acc_dtype: tl.constexpr = tl.float64 if ACC_FP64 else tl.float32
    h = tl.arange(0, BLOCK_H)
    h_mask = h < num_heads
    first = tl.load(program_ptr + tl.program_id(0))
    last = tl.load(program_ptr + tl.program_id(0) + 1)
    for item in range(first, last):
        row = tl.load(item_row + item)
        start = tl.load(item_start + item)
        end = tl.load(item_end + item)
        slot = tl.load(item_slot + item)
        dst_row = tl.load(dst + row * stride_d + h, mask=h_mask, other=0.0).to(acc_dtype)
        if CHUNKS_ONLY:
            top = tl.load(part_max + slot * num_heads + h, mask=h_mask, other=0.0)
            total = tl.load(part_sum + slot * num_heads + h, mask=h_mask, other=1.0)
            _store_alpha(
                indices, src, stride_s, alpha, dst_row, top, total, start, end, h, h_mask,
                num_heads, slope, acc_dtype, BLOCK_E,
            )  # fmt: skip
        elif end - start <= BLOCK_E:  # the row (or chunk) in one tile: one pass over it
            e = start + tl.arange(0, BLOCK_E)
            e_mask = e < end
            col = tl.load(indices + e, mask=e_mask, other=0).to(tl.int64)
            logit = _logits(src, stride_s, dst_row, col, e_mask, h, h_mask, slope, acc_dtype)
            top = tl.max(logit, axis=0)
            weight = tl.exp(logit - top[None, :])
            total = tl.sum(weight, axis=0)
            if slot >= 0:
                tl.store(part_max + slot * num_heads + h, top, mask=h_mask)
                tl.store(part_sum + slot * num_heads + h, total, mask=h_mask)
            else:
                mask = e_mask[:, None] & h_mask[None, :]
                tl.store(
                    alpha + e[:, None] * num_heads + h[None, :], weight / total[None, :], mask=mask
                )
        else:  # an online max and sum over the tiles, then a second pass writes alpha
            top = tl.full([BLOCK_H], float("-inf"), acc_dtype)
            total = tl.zeros([BLOCK_H], acc_dtype)
            for e0 in range(start, end, BLOCK_E):
                e = e0 + tl.arange(0, BLOCK_E)
                e_mask = e < end
                col = tl.load(indices + e, mask=e_mask, other=0).to(tl.int64)
                logit = _logits(src, stride_s, dst_row, col, e_mask, h, h_mask, slope, acc_dtype)
                new_top = tl.maximum(top, tl.max(logit, axis=0))
                total = total * tl.exp(top - new_top)
                total += tl.sum(tl.exp(logit - new_top[None, :]), axis=0)
                top = new_top
            if slot >= 0:
                tl.store(part_max + slot * num_heads + h, top, mask=h_mask)
                tl.store(part_sum + slot * num_heads + h, total, mask=h_mask)
            else:
                _store_alpha(
                    indices, src, stride_s, alpha, dst_row, top, total, start, end, h, h_mask,
                    num_heads, slope, acc_dtype, BLOCK_E,
                )  # fmt: skip


@triton.jit
def _combine_softmax_kernel(
    chunk_ptr, part_max, part_sum, num_heads, ACC_FP64: tl.constexpr, BLOCK_H: tl.constexpr
):
    """Merges one heavy row's chunk partials in slot order and writes the row's (max, sum)
    back into each of its slots."""
    acc_dtype: tl.constexpr = tl.float64 if ACC_FP64 else tl.float32
    h = tl.arange(0, BLOCK_H)
    h_mask = h < num_heads
    first = tl.load(chunk_ptr + tl.program_id(0))
    last = tl.load(chunk_ptr + tl.program_id(0) + 1)
    top = tl.full([BLOCK_H], float("-inf"), acc_dtype)
    total = tl.zeros([BLOCK_H], acc_dtype)
    for slot in range(first, last):
        chunk_top = tl.load(part_max + slot * num_heads + h, mask=h_mask, other=0.0)
        chunk_total = tl.load(part_sum + slot * num_heads + h, mask=h_mask, other=0.0)
        new_top = tl.maximum(top, chunk_top)
        total = total * tl.exp(top - new_top) + chunk_total * tl.exp(chunk_top - new_top)
        top = new_top
    for slot in range(first, last):
        tl.store(part_max + slot * num_heads + h, top, mask=h_mask)
        tl.store(part_sum + slot * num_heads + h, total, mask=h_mask)


@triton.jit
def _softmax_backward_kernel(
    rows, cols, alpha, d_alpha, row_dot, src, dst, d_logit_sum,
    num_edges, num_heads, slope, stride_s, stride_d,
    ACC_FP64: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_H: tl.constexpr,
):  # fmt: skip
    """``ds = alpha (dalpha - t_i)``, times the slope where ``dst_i + src_j <= 0``."""
    acc_dtype: tl.constexpr = tl.float64 if ACC_FP64 else tl.float32
    e = tl.program_id(0).to(tl.int64) * BLOCK_E + tl.arange(0, BLOCK_E)
    h = tl.arange(0, BLOCK_H)
    e_mask = e < num_edges
    mask = e_mask[:, None] & (h < num_heads)[None, :]
    row = tl.load(rows + e, mask=e_mask, other=0).to(tl.int64)
    col = tl.load(cols + e, mask=e_mask, other=0).to(tl.int64)
    at = e[:, None] * num_heads + h[None, :]
    weight = tl.load(alpha + at, mask=mask, other=0.0).to(acc_dtype)
    grad = tl.load(d_alpha + at, mask=mask, other=0.0).to(acc_dtype)
    dot = tl.load(row_dot + row[:, None] * num_heads + h[None, :], mask=mask, other=0.0)
    s = tl.load(dst + row[:, None] * stride_d + h[None, :], mask=mask, other=0.0).to(acc_dtype)
    s += tl.load(src + col[:, None] * stride_s + h[None, :], mask=mask, other=0.0).to(acc_dtype)
    d_s = weight * (grad - dot.to(acc_dtype))
    d_s = tl.where(s > 0, d_s, d_s * slope)
    tl.store(d_logit_sum + at, d_s, mask=mask)


def edge_softmax(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    src: torch.Tensor,
    dst: torch.Tensor,
    slope: float,
    schedule: TileSchedule,
    block_e: int = 32,
) -> torch.Tensor:
    """``alpha`` ``[E, H]``: each row's softmax of ``LeakyReLU(dst_i + src_j)`` per head, in
    fp32 (fp64 for fp64 ``src``)."""
    heads = src.shape[1]
    dtype = torch.float64 if src.dtype == torch.float64 else torch.float32
    alpha = torch.empty((indices.numel(), heads), dtype=dtype, device=src.device)
    part_max = torch.empty((max(schedule.num_slots, 1), heads), dtype=dtype, device=src.device)
    part_sum = torch.empty_like(part_max)
    if schedule.num_programs == 0:
        return alpha
    src, dst = src.contiguous(), dst.contiguous()
    common = dict(ACC_FP64=dtype == torch.float64, BLOCK_H=triton.next_power_of_2(heads))
    arguments = (
        schedule.program_ptr, schedule.item_row, schedule.item_start, schedule.item_end,
        schedule.item_slot, indices, src, dst, alpha, part_max, part_sum,
        heads, slope, src.stride(0), dst.stride(0),
    )  # fmt: skip
    _edge_softmax_kernel[(schedule.num_programs,)](
        *arguments, CHUNKS_ONLY=False, BLOCK_E=block_e, **common
    )
    num_heavy = schedule.heavy_row.numel()
    if num_heavy:
        _combine_softmax_kernel[(num_heavy,)](
            schedule.chunk_ptr, part_max, part_sum, heads, **common
        )
        # the heavy chunks are the first num_slots programs, one chunk each
        _edge_softmax_kernel[(schedule.num_slots,)](
            *arguments, CHUNKS_ONLY=True, BLOCK_E=block_e, **common
        )
    return alpha


def _weighted_sums(
    indptr: torch.Tensor,
    cols: torch.Tensor,
    x: torch.Tensor,
    schedule: TileSchedule,
    launch: Launch,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``y_ih = sum_k w_kh x[cols_k, h]`` over row ``i``'s positions ``k``: ``[N, H F]`` for
    ``x`` ``[M, H F]`` and ``w`` ``[E, H]`` (None: 1). With edge ids as ``cols`` it sums
    per-edge values ``[E, H]`` per row."""
    out, _ = spmm_forward(
        indptr, cols, x, schedule, values=weights, reduce="sum", row_scale=None, col_scale=None,
        launch=launch,
    )  # fmt: skip
    return out


class TritonAttention(torch.autograd.Function):
    """Autograd of the Triton attention aggregation: gradients for ``x``, ``src`` and ``dst``
    (see the module docstring)."""

    @staticmethod
    def forward(ctx, x, src, dst, indptr, indices, slope, keep, plan, params, launch, record):
        schedule = plan.schedule(indptr, params)
        alpha = edge_softmax(indptr, indices, src, dst, slope, schedule, launch.block_e)
        if record is not None:
            record.weights = alpha.detach()
        weights = alpha if keep is None else alpha * keep.to(alpha.dtype)
        out = _weighted_sums(indptr, indices, x, schedule, launch, weights)
        ctx.save_for_backward(x, src, dst, indptr, indices, alpha, keep)
        ctx.slope, ctx.plan, ctx.params, ctx.launch = slope, plan, params, launch
        return out

    @staticmethod
    def backward(ctx, grad):
        x, src, dst, indptr, indices, alpha, keep = ctx.saved_tensors
        plan: GraphPlan = ctx.plan
        launch: Launch = ctx.launch
        grad = grad.contiguous()
        heads = alpha.shape[1]
        weights = alpha if keep is None else alpha * keep.to(alpha.dtype)
        t = plan.transpose(indptr, indices)
        t_schedule = t.plan.schedule(t.indptr, ctx.params)
        grad_x = grad_src = grad_dst = None
        if ctx.needs_input_grad[0]:
            grad_x = _weighted_sums(t.indptr, t.indices, grad, t_schedule, launch, weights[t.perm])
            grad_x = grad_x.to(x.dtype)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            rows = plan.edge_rows(indptr)
            d_alpha = sddmm(rows, indices, grad, x, heads=heads, out_dtype=alpha.dtype)
            if keep is not None:
                d_alpha.mul_(keep.to(d_alpha.dtype))
            schedule = plan.schedule(indptr, ctx.params)
            edge_ids = plan.edges(indices)
            row_dot = _weighted_sums(indptr, edge_ids, d_alpha, schedule, launch, alpha)
            d_s = torch.empty_like(alpha)
            block_e = 64
            _softmax_backward_kernel[(triton.cdiv(max(alpha.shape[0], 1), block_e),)](
                rows, indices, alpha, d_alpha, row_dot, src, dst, d_s,
                alpha.shape[0], heads, ctx.slope, src.stride(0), dst.stride(0),
                ACC_FP64=alpha.dtype == torch.float64, BLOCK_E=block_e,
                BLOCK_H=triton.next_power_of_2(heads),
            )  # fmt: skip
            if ctx.needs_input_grad[1]:
                grad_src = _weighted_sums(t.indptr, t.perm, d_s, t_schedule, launch).to(src.dtype)
            if ctx.needs_input_grad[2]:
                grad_dst = _weighted_sums(indptr, edge_ids, d_s, schedule, launch).to(dst.dtype)
        return grad_x, grad_src, grad_dst, *([None] * 8)


def aggregate_attention_triton(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    attention: EdgeAttention,
    *,
    params: ScheduleParams | None = None,
    block_e: int = 32,
    block_f: int | None = None,
) -> torch.Tensor:
    """The ``triton`` attention backend of :func:`gnnrec.kernels.aggregate`: ``y`` ``[N, H F]``
    from ``x`` ``[M, H F]`` (fp32, bf16, fp16 or fp64; fp32 accumulation, fp64 for fp64) and
    ``attention``'s ``src`` ``[M, H]``, ``dst`` ``[N, H]``. ``params``, ``block_e``,
    ``block_f``: the tile schedule and tile sizes (as for the aggregation kernels)."""
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    tensors = (indptr, indices, attention.src, attention.dst)
    if any(t.device != x.device for t in tensors):
        raise ValueError("indptr, indices, x and the attention terms must be on one device")
    keep = attention.keep(indices.numel(), x.device) if torch.is_grad_enabled() else None
    plan = plan_for(indptr, indices, x.shape[0])
    return TritonAttention.apply(
        x,
        attention.src.contiguous(),
        attention.dst.contiguous(),
        indptr,
        indices,
        attention.negative_slope,
        keep,
        plan,
        params or ScheduleParams(),
        Launch(block_e, block_f),
        attention if attention.record else None,
    )
