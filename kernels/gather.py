"""Row gather in Triton, ``out[k] = src[index[k]]``, for graphs and features that stay in
pinned host memory: on a CUDA device the kernel reads the pinned rows in place through unified
virtual addressing (zero-copy), so only the gathered rows cross PCIe. ``src`` ``[N]`` or
``[N, F]`` of any dtype, ``index`` ``[n]`` int32/int64 on the device; the result is on the
index's device. Each program copies ``BLOCK_N`` rows in ``BLOCK_F``-wide tiles.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _gather_rows_kernel(
    src, index, out, num_rows, width,
    BLOCK_N: tl.constexpr, BLOCK_F: tl.constexpr,
):  # fmt: skip
    k = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    k_mask = k < num_rows
    row = tl.load(index + k, mask=k_mask, other=0).to(tl.int64)
    for f0 in range(0, width, BLOCK_F):
        f = f0 + tl.arange(0, BLOCK_F)
        mask = k_mask[:, None] & (f < width)[None, :]
        values = tl.load(src + row[:, None] * width + f[None, :], mask=mask)
        tl.store(out + k[:, None].to(tl.int64) * width + f[None, :], values, mask=mask)


def gather_rows(
    src: torch.Tensor, index: torch.Tensor, block_n: int = 64, block_f: int = 64
) -> torch.Tensor:
    """``src[index]`` computed by the kernel (see module docstring)."""
    if index.dim() != 1 or index.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"index must be a 1-D int32/int64 tensor, got {index.dtype}")
    if src.dim() not in (1, 2) or not src.is_contiguous():
        raise ValueError("src must be a contiguous [N] or [N, F] tensor")
    if src.device != index.device and not (src.device.type == "cpu" and src.is_pinned()):
        raise ValueError(
            f"src on {src.device} cannot be read from {index.device}: pin it "
            "(tensor.pin_memory()) or move it to the index's device"
        )
    width = 1 if src.dim() == 1 else src.shape[1]
    out = torch.empty((index.numel(), *src.shape[1:]), dtype=src.dtype, device=index.device)
    if index.numel() and width:
        grid = (triton.cdiv(index.numel(), block_n),)
        block_f = min(block_f, triton.next_power_of_2(width))
        _gather_rows_kernel[grid](src, index, out, index.numel(), width, block_n, block_f)
    return out
