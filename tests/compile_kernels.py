"""Compiles every Triton kernel variant ahead of time for Hopper (sm_90) and Ampere (sm_80)
with the installed Triton; no GPU is needed. Run as a script without ``TRITON_INTERPRET``
(``tests/test_kernels_compile.py`` does): ``python tests/compile_kernels.py``."""

from __future__ import annotations

import os
import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from gnnrec.kernels.gather import _gather_rows_kernel
from gnnrec.kernels.sddmm import _sddmm_kernel
from gnnrec.kernels.triton_aggregate import _combine_heavy_kernel, _spmm_items_kernel
from gnnrec.kernels.triton_attention import (
    _combine_softmax_kernel,
    _edge_softmax_kernel,
    _softmax_backward_kernel,
)

TARGETS = [GPUTarget("cuda", 90, 32), GPUTarget("cuda", 80, 32)]
DTYPES = ["fp32", "bf16", "fp16", "fp64"]


def _compile(
    kernel, pointers: dict[str, str], constexprs: dict[str, object], target, options=None
) -> None:
    """Compiles ``kernel`` with pointer element types ``pointers``, fp32 for a ``slope``, i64
    for every other runtime argument, the given constexpr values and launch ``options``
    (``num_warps``, ``num_stages``); returns nothing, raises on failure."""
    signature, constants = {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
            constants[(i,)] = constexprs[name]
        elif name in pointers:
            signature[name] = f"*{pointers[name]}"
        else:
            signature[name] = "fp32" if name == "slope" else "i64"
    source = ASTSource(kernel, signature, constants)
    compiled = triton.compile(source, target=target, options=options or {})
    assert compiled.asm["cubin"]


def _spmm_pointers(dtype: str) -> dict[str, str]:
    acc = "fp64" if dtype == "fp64" else "fp32"
    index = dict.fromkeys(
        [
            "program_ptr",
            "item_row",
            "item_start",
            "item_end",
            "item_slot",
            "indptr",
            "out_arg",
            "partial_arg",
            "heavy_row",
            "chunk_ptr",
        ],
        "i64",
    )
    return {
        **index,
        "indices": "i32",
        "x": dtype,
        "values": dtype,
        "col_scale": "fp32",
        "row_scale": "fp32",
        "out": dtype,
        "partial": acc,
    }


def _compile_attention(target) -> int:
    """The attention kernels: edge softmax (both passes) and its combine and backward for
    fp32/bf16/fp64 logit terms, and the aggregation with per-head edge weights."""
    count = 0
    for dtype in ("fp32", "bf16", "fp64"):
        acc = "fp64" if dtype == "fp64" else "fp32"
        schedule = dict.fromkeys(
            ["program_ptr", "item_row", "item_start", "item_end", "item_slot"], "i64"
        )
        pointers = {**schedule, "indices": "i32", "src": dtype, "dst": dtype}
        pointers |= dict.fromkeys(["alpha", "part_max", "part_sum"], acc)
        flags = {"ACC_FP64": dtype == "fp64", "BLOCK_H": 4}
        for chunks_only in (False, True):
            constexprs = {**flags, "CHUNKS_ONLY": chunks_only, "BLOCK_E": 32}
            _compile(_edge_softmax_kernel, pointers, constexprs, target)
        _compile(_combine_softmax_kernel, {**pointers, "chunk_ptr": "i64"}, flags, target)
        pointers = {"rows": "i64", "cols": "i32", "src": dtype, "dst": dtype}
        pointers |= dict.fromkeys(["alpha", "d_alpha", "row_dot", "d_logit_sum"], acc)
        _compile(_softmax_backward_kernel, pointers, {**flags, "BLOCK_E": 64}, target)
        spmm = {**_spmm_pointers(dtype), "values": acc}
        constexprs = {"REDUCE": 0, "HAS_ROW_SCALE": False, "HAS_VALUES": True}
        constexprs |= {"HAS_COL_SCALE": False, "ACC_FP64": dtype == "fp64", "BLOCK_E": 32}
        constexprs |= {"BLOCK_F": 128, "REDUCE_ONCE": False, "HEAD_WIDTH": 64}
        _compile(_spmm_items_kernel, spmm, constexprs, target)
        count += 5
    return count


CASES = [(d, r, True) for d in DTYPES for r in (0, 1, 2)] + [("fp32", 0, False), ("bf16", 2, False)]


def compile_all() -> int:
    """Compiles every case for every target; returns how many kernels were compiled."""
    count = 0
    for target in TARGETS:
        for dtype, reduce, optional in CASES:
            flags = {"REDUCE": reduce, "HAS_ROW_SCALE": optional, "ACC_FP64": dtype == "fp64"}
            pointers = _spmm_pointers(dtype)
            _compile(
                _spmm_items_kernel,
                pointers,
                {
                    **flags,
                    "HAS_VALUES": optional,
                    "HAS_COL_SCALE": optional,
                    "BLOCK_E": 32,
                    "BLOCK_F": 128,
                    "REDUCE_ONCE": False,
                },
                target,
            )
            _compile(_combine_heavy_kernel, pointers, {**flags, "BLOCK_F": 128}, target)
            count += 2
        # The launch sweep's extremes: one warp and eight, one stage and four, 16-edge tiles,
        # reducing per tile and once per row.
        for dtype in ("fp32", "bf16"):
            flags = {"REDUCE": 0, "HAS_ROW_SCALE": True, "ACC_FP64": False}
            flags |= {"HAS_VALUES": False, "HAS_COL_SCALE": True, "BLOCK_E": 16, "BLOCK_F": 128}
            for num_warps in (1, 8):
                for num_stages in (1, 4):
                    for once in (False, True):
                        launch = {"num_warps": num_warps, "num_stages": num_stages}
                        constexprs = {**flags, "REDUCE_ONCE": once}
                        _compile(
                            _spmm_items_kernel, _spmm_pointers(dtype), constexprs, target, launch
                        )
                        count += 1
        for dtype in DTYPES:
            pointers = {
                "rows": "i64",
                "cols": "i32",
                "a": dtype,
                "b": dtype,
                "row_scale": dtype,
                "col_scale": "fp32",
                "out": dtype,
            }
            flags = {"HAS_ROW_SCALE": True, "HAS_COL_SCALE": True, "ACC_FP64": dtype == "fp64"}
            _compile(_sddmm_kernel, pointers, {**flags, "BLOCK_E": 64, "BLOCK_F": 64}, target)
            count += 1
        count += _compile_attention(target)
        for src, index in [("i64", "i64"), ("i32", "i64"), ("fp32", "i64"), ("bf16", "i32")]:
            pointers = {"src": src, "index": index, "out": src}
            _compile(_gather_rows_kernel, pointers, {"BLOCK_N": 64, "BLOCK_F": 64}, target)
            _compile(_gather_rows_kernel, pointers, {"BLOCK_N": 64, "BLOCK_F": 1}, target)
            count += 2
    return count


if __name__ == "__main__":
    if os.environ.get("TRITON_INTERPRET") == "1":
        sys.exit("unset TRITON_INTERPRET: the interpreter does not compile kernels")
    print(f"compiled {compile_all()} kernels with triton {triton.__version__}")
