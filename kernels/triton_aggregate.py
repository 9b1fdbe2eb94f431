"""CSR aggregation (SpMM-style) in Triton, forward and backward.

Forward, for row ``i`` with edges ``e = (i, j)``:

.. math::
    y_i = r_i \\cdot \\bigoplus_e w_e \\, c_j \\, x_j, \\qquad
    \\oplus \\in \\{\\text{sum}, \\text{mean}, \\text{max}\\}

(empty rows give 0). Each program walks its work items (:mod:`gnnrec.kernels.schedule`),
gathering ``[BLOCK_E, BLOCK_F]`` tiles of ``x`` rows and reducing them in fp32 (fp64 for fp64
inputs); heavy rows are split into chunks whose partial results a second kernel reduces in a
fixed order. Per-node scales ``r``, ``c`` replace per-edge GCN normalisation values.

Backward (sum; mean folds ``1/deg_i`` into ``r``):

.. math::
    \\partial x_j = c_j \\sum_{e=(i,j)} w_e \\, r_i \\, \\partial y_i \\;(= \\text{the same kernel
    on } A^\\top), \\qquad
    \\partial w_e = r_i \\, c_j \\, \\langle \\partial y_i, x_j \\rangle \\;(\\text{SDDMM})

``A^T`` is built once per graph and cached; a structurally symmetric ``A`` without edge values
is reused as its own transpose. Max stores the argmax edge per output element and routes
gradients through it. The Triton kernels use no atomics: sum and mean, forward and backward,
are deterministic. The max backward scatters through torch's ``index_put_``/``index_add_``,
which use atomics on a GPU: there the order of additions into one ``dX`` row (and so its last
bits) may vary between runs when several argmax edges share a source node.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from gnnrec.kernels.schedule import GraphPlan, ScheduleParams, TileSchedule, plan_for
from gnnrec.kernels.sddmm import sddmm

REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2}


@dataclass(frozen=True)
class Launch:
    """How the item kernel runs: ``block_e`` x ``block_f`` tiles (``block_f`` None:
    ``min(next_pow2(F), 128)``), ``num_warps`` and ``num_stages`` (None: Triton's defaults; the
    interpreter ignores them), and ``reduce_once``: sum and mean reduce over a row's edges once,
    not once per tile."""

    block_e: int = 32
    block_f: int | None = None
    num_warps: int | None = None
    num_stages: int | None = None
    reduce_once: bool = False


@triton.jit
def _finish_row(
    acc,
    arg,
    row,
    indptr,
    row_scale,
    out,
    out_arg,
    f,
    f_mask,
    stride_on,
    REDUCE: tl.constexpr,
    HAS_ROW_SCALE: tl.constexpr,
):
    """Epilogue of one output row: mean's division, max's empty-row zero, ``r_i``, store."""
    if REDUCE == 1:
        degree = tl.load(indptr + row + 1) - tl.load(indptr + row)
        acc = acc / tl.maximum(degree, 1).to(acc.dtype)
    if REDUCE == 2:
        acc = tl.where(arg >= 0, acc, 0.0)
        tl.store(out_arg + row * stride_on + f, arg, mask=f_mask)
    if HAS_ROW_SCALE:
        acc = acc * tl.load(row_scale + row).to(acc.dtype)
    tl.store(out + row * stride_on + f, acc.to(out.dtype.element_ty), mask=f_mask)


@triton.jit
def _spmm_items_kernel(
    program_ptr, item_row, item_start, item_end, item_slot,
    indptr, indices, x, values, col_scale, row_scale,
    out, out_arg, partial, partial_arg,
    num_features, stride_xn, stride_xf, stride_on, stride_pn, stride_ve,
    REDUCE: tl.constexpr, HAS_VALUES: tl.constexpr, HAS_COL_SCALE: tl.constexpr,
    HAS_ROW_SCALE: tl.constexpr, ACC_FP64: tl.constexpr,
    BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr, REDUCE_ONCE: tl.constexpr = False,
    HEAD_WIDTH: tl.constexpr = 0,
):  # fmt: skip
    # HEAD_WIDTH > 0: values are [E, H] (row stride stride_ve), one per edge and head, and
    # feature f belongs to head f // HEAD_WIDTH (attention's weighted sums).
    # REDUCE_ONCE (sum/mean): accumulate whole [BLOCK_E, BLOCK_F] tiles and reduce over the
    # edges once per row, instead of once per tile (fewer instructions and barriers per edge,
    # more registers); a launch choice for the sweep, same math up to summation order.
    acc_dtype: tl.constexpr = tl.float64 if ACC_FP64 else tl.float32
    f = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    f_mask = f < num_features
    first = tl.load(program_ptr + tl.program_id(0))
    last = tl.load(program_ptr + tl.program_id(0) + 1)
    for item in range(first, last):
        row = tl.load(item_row + item)
        start = tl.load(item_start + item)
        end = tl.load(item_end + item)
        if REDUCE == 2:
            acc = tl.full([BLOCK_F], float("-inf"), acc_dtype)
        else:
            acc = tl.zeros([BLOCK_F], acc_dtype)
        arg = tl.full([BLOCK_F], -1, tl.int64)
        if REDUCE_ONCE:
            acc_tile = tl.zeros([BLOCK_E, BLOCK_F], acc_dtype)
        for e0 in range(start, end, BLOCK_E):
            e = e0 + tl.arange(0, BLOCK_E)
            e_mask = e < end
            col = tl.load(indices + e, mask=e_mask, other=0).to(tl.int64)
            tile_mask = e_mask[:, None] & f_mask[None, :]
            tile = tl.load(
                x + col[:, None] * stride_xn + f[None, :] * stride_xf, mask=tile_mask, other=0.0
            ).to(acc_dtype)
            if HAS_VALUES:
                if HEAD_WIDTH > 0:
                    head = f // HEAD_WIDTH
                    weights = tl.load(
                        values + e[:, None] * stride_ve + head[None, :], mask=tile_mask, other=0.0
                    )
                    tile = tile * weights.to(acc_dtype)
                else:
                    weight = tl.load(values + e, mask=e_mask, other=0.0)
                    tile = tile * weight.to(acc_dtype)[:, None]
            if HAS_COL_SCALE:
                tile = (
                    tile * tl.load(col_scale + col, mask=e_mask, other=0.0).to(acc_dtype)[:, None]
                )
            if REDUCE == 2:
                tile = tl.where(tile_mask, tile, float("-inf"))
                tile_max = tl.max(tile, axis=0)
                tile_arg = tl.argmax(tile, axis=0).to(tl.int64) + e0
                better = tile_max > acc
                arg = tl.where(better, tile_arg, arg)
                acc = tl.where(better, tile_max, acc)
            elif REDUCE_ONCE:
                acc_tile += tile
            else:
                acc += tl.sum(tile, axis=0)
        if REDUCE_ONCE:
            if REDUCE != 2:
                acc = tl.sum(acc_tile, axis=0)
        slot = tl.load(item_slot + item)
        if slot >= 0:
            tl.store(partial + slot * stride_pn + f, acc, mask=f_mask)
            if REDUCE == 2:
                tl.store(partial_arg + slot * stride_pn + f, arg, mask=f_mask)
        else:
            _finish_row(
                acc,
                arg,
                row,
                indptr,
                row_scale,
                out,
                out_arg,
                f,
                f_mask,
                stride_on,
                REDUCE,
                HAS_ROW_SCALE,
            )


@triton.jit
def _combine_heavy_kernel(
    heavy_row, chunk_ptr, partial, partial_arg, indptr, row_scale, out, out_arg,
    num_features, stride_on, stride_pn,
    REDUCE: tl.constexpr, HAS_ROW_SCALE: tl.constexpr, ACC_FP64: tl.constexpr,
    BLOCK_F: tl.constexpr,
):  # fmt: skip
    acc_dtype: tl.constexpr = tl.float64 if ACC_FP64 else tl.float32
    f = tl.program_id(1) * BLOCK_F + tl.arange(0, BLOCK_F)
    f_mask = f < num_features
    h = tl.program_id(0)
    row = tl.load(heavy_row + h)
    if REDUCE == 2:
        acc = tl.full([BLOCK_F], float("-inf"), acc_dtype)
    else:
        acc = tl.zeros([BLOCK_F], acc_dtype)
    arg = tl.full([BLOCK_F], -1, tl.int64)
    for slot in range(tl.load(chunk_ptr + h), tl.load(chunk_ptr + h + 1)):
        value = tl.load(partial + slot * stride_pn + f, mask=f_mask, other=0.0)
        if REDUCE == 2:
            chunk_arg = tl.load(partial_arg + slot * stride_pn + f, mask=f_mask, other=-1)
            better = value > acc
            arg = tl.where(better, chunk_arg, arg)
            acc = tl.where(better, value, acc)
        else:
            acc += value
    _finish_row(
        acc, arg, row, indptr, row_scale, out, out_arg, f, f_mask, stride_on, REDUCE, HAS_ROW_SCALE
    )


def spmm_forward(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    schedule: TileSchedule,
    *,
    values: torch.Tensor | None,
    reduce: str,
    row_scale: torch.Tensor | None,
    col_scale: torch.Tensor | None,
    launch: Launch = Launch(),
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(y [N, F], argmax [N, F] int64 or None)``; launches the item and combine kernels.
    ``values``: ``[E]``, or ``[E, H]`` (contiguous rows) weighting each head's ``F / H``
    features separately."""
    num_rows, num_features = indptr.numel() - 1, x.shape[1]
    block_f = launch.block_f or min(triton.next_power_of_2(max(num_features, 1)), 128)
    out = torch.zeros(num_rows, num_features, dtype=x.dtype, device=x.device)
    is_max = reduce == "max"
    out_arg = torch.full_like(out, -1, dtype=torch.int64) if is_max else out
    acc_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    partial = torch.empty(
        max(schedule.num_slots, 1), num_features, dtype=acc_dtype, device=x.device
    )
    partial_arg = torch.empty_like(partial, dtype=torch.int64) if is_max else partial
    dummy = out  # stands in for absent optional tensors; never read
    head_width = head_stride = 0
    if values is not None and values.dim() == 2:
        if values.stride(1) != 1 or num_features % values.shape[1]:
            raise ValueError("[E, H] values need contiguous rows and F a multiple of H")
        head_width, head_stride = num_features // values.shape[1], values.stride(0)
    common = dict(
        REDUCE=REDUCE_CODES[reduce],
        HAS_ROW_SCALE=row_scale is not None,
        ACC_FP64=acc_dtype == torch.float64,
        BLOCK_F=block_f,
    )
    feature_blocks = triton.cdiv(num_features, block_f)
    options = {"num_warps": launch.num_warps, "num_stages": launch.num_stages}
    options = {k: v for k, v in options.items() if v}
    if schedule.num_programs > 0 and num_features > 0:
        _spmm_items_kernel[(schedule.num_programs, feature_blocks)](
            schedule.program_ptr, schedule.item_row, schedule.item_start, schedule.item_end,
            schedule.item_slot, indptr, indices, x,
            dummy if values is None else values, dummy if col_scale is None else col_scale,
            dummy if row_scale is None else row_scale,
            out, out_arg, partial, partial_arg,
            num_features, x.stride(0), x.stride(1), out.stride(0), partial.stride(0),
            head_stride, HAS_VALUES=values is not None, HAS_COL_SCALE=col_scale is not None,
            BLOCK_E=launch.block_e, REDUCE_ONCE=launch.reduce_once, HEAD_WIDTH=head_width,
            **common, **options,
        )  # fmt: skip
    if schedule.heavy_row.numel() > 0 and num_features > 0:
        _combine_heavy_kernel[(schedule.heavy_row.numel(), feature_blocks)](
            schedule.heavy_row, schedule.chunk_ptr, partial, partial_arg, indptr,
            dummy if row_scale is None else row_scale, out, out_arg,
            num_features, out.stride(0), partial.stride(0), **common,
        )  # fmt: skip
    return out, (out_arg if is_max else None)


class TritonAggregate(torch.autograd.Function):
    """Autograd for :func:`spmm_forward`: gradients for ``x`` and ``values`` (scales are
    constants, like GCN normalisation). The backward's transposed product runs with the same
    :class:`Launch`."""

    @staticmethod
    def forward(ctx, x, values, indptr, indices, row_scale, col_scale, reduce, plan, params,
                launch):  # fmt: skip
        schedule = plan.schedule(indptr, params)
        out, argmax = spmm_forward(
            indptr, indices, x, schedule, values=values, reduce=reduce, row_scale=row_scale,
            col_scale=col_scale, launch=launch,
        )  # fmt: skip
        ctx.save_for_backward(x, values, indptr, indices, row_scale, col_scale, argmax)
        ctx.reduce, ctx.plan, ctx.params, ctx.launch = reduce, plan, params, launch
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, values, indptr, indices, row_scale, col_scale, argmax = ctx.saved_tensors
        plan: GraphPlan = ctx.plan
        grad_out = grad_out.contiguous()
        if ctx.reduce == "max":
            grad_x, grad_values = _max_backward(
                ctx, grad_out, x, values, indices, row_scale, col_scale, argmax
            )
            return grad_x, grad_values, *([None] * 8)
        # r'_i = r_i (sum) or r_i / deg_i (mean): the scale the output row received.
        r = row_scale
        if ctx.reduce == "mean":
            degree = (indptr[1:] - indptr[:-1]).clamp(min=1).to(grad_out.dtype)
            r = (1.0 / degree) if r is None else r.to(grad_out.dtype) / degree
        grad_x = grad_values = None
        if ctx.needs_input_grad[0]:
            if values is None and plan.is_symmetric(indptr, indices):
                t_indptr, t_indices, t_values, t_plan = indptr, indices, None, plan
            else:
                t = plan.transpose(indptr, indices)
                t_indptr, t_indices, t_plan = t.indptr, t.indices, t.plan
                t_values = None if values is None else values[t.perm]
            grad_x, _ = spmm_forward(
                t_indptr, t_indices, grad_out, t_plan.schedule(t_indptr, ctx.params),
                values=t_values, reduce="sum", row_scale=col_scale, col_scale=r,
                launch=ctx.launch,
            )  # fmt: skip
            grad_x = grad_x.to(x.dtype)
        if values is not None and ctx.needs_input_grad[1]:
            grad_values = sddmm(
                plan.edge_rows(indptr), indices, grad_out, x, row_scale=r, col_scale=col_scale,
                out_dtype=values.dtype, block_f=ctx.launch.block_f,
            )  # fmt: skip
        return grad_x, grad_values, *([None] * 8)


def _max_backward(ctx, grad_out, x, values, indices, row_scale, col_scale, argmax):
    """Routes ``dY[i, f]`` to the argmax edge ``e = (i, j)`` of that element:
    ``dX[j, f] += r_i w_e c_j dY[i, f]`` and ``dw_e += r_i c_j x[j, f] dY[i, f]``."""
    hit = argmax >= 0
    rows = torch.nonzero(hit)[:, 0]
    feats = torch.nonzero(hit)[:, 1]
    edges = argmax[hit]
    cols = indices.long()[edges]
    g = grad_out[hit].to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    if row_scale is not None:
        g = g * row_scale[rows].to(g.dtype)
    if col_scale is not None:
        g = g * col_scale[cols].to(g.dtype)
    grad_x = grad_values = None
    if ctx.needs_input_grad[0]:
        w = g if values is None else g * values[edges].to(g.dtype)
        grad_x = torch.zeros(x.shape, dtype=g.dtype, device=x.device)
        grad_x.index_put_((cols, feats), w, accumulate=True)
        grad_x = grad_x.to(x.dtype)
    if values is not None and ctx.needs_input_grad[1]:
        grad_values = torch.zeros(values.shape, dtype=g.dtype, device=x.device)
        grad_values.index_add_(0, edges, g * x[cols, feats].to(g.dtype))
        grad_values = grad_values.to(values.dtype)
    return grad_x, grad_values


def aggregate_triton(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    *,
    edge_values: torch.Tensor | None = None,
    reduce: str = "sum",
    row_scale: torch.Tensor | None = None,
    col_scale: torch.Tensor | None = None,
    params: ScheduleParams | None = None,
    block_e: int = 32,
    block_f: int | None = None,
    num_warps: int | None = None,
    num_stages: int | None = None,
    reduce_once: bool = False,
) -> torch.Tensor:
    """The ``triton`` backend of :func:`gnnrec.kernels.aggregate` (same arguments and math).

    ``x`` may be fp32, bf16, fp16 (fp32 accumulation) or fp64 (fp64 accumulation) and need not
    be contiguous; ``params`` shapes the tile schedule, ``block_e``/``block_f`` the tiles
    (``block_f`` defaults to ``min(next_pow2(F), 128)``), ``num_warps``/``num_stages``/
    ``reduce_once`` the item kernel's launch (see :class:`Launch`).
    """
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    for name, t in (("row_scale", row_scale), ("col_scale", col_scale)):
        if t is not None and t.requires_grad:
            raise ValueError(f"{name} is treated as a constant; detach it first")
    if indptr.device != x.device or indices.device != x.device:
        raise ValueError("indptr, indices and x must be on the same device")
    plan = plan_for(indptr, indices, x.shape[0])
    return TritonAggregate.apply(
        x,
        edge_values,
        indptr,
        indices,
        row_scale,
        col_scale,
        reduce,
        plan,
        params or ScheduleParams(),
        Launch(block_e, block_f, num_warps, num_stages, reduce_once),
    )
