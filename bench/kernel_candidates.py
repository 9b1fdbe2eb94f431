"""What ``gnnrec bench kernels`` times: every aggregation and GCN-layer implementation as a
callable (ours on Triton, cuSPARSE, PyG's paths, torch-sparse when installed), the device
timer, the copy bandwidth that bounds them, and one timing that records a failure instead of
stopping the benchmark."""

from __future__ import annotations

from collections.abc import Callable

import torch

from gnnrec.bench.harness import (
    median_seconds,
)
from gnnrec.kernels.csr import inverse_sqrt_degree

CUSPARSE = "torch.sparse.mm (cuSPARSE on GPU)"


def timer_for(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Milliseconds: ``triton.testing.do_bench`` medians on a GPU, perf_counter medians on CPU."""
    if device.type == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")
    return lambda fn: 1000 * median_seconds(fn, repeats=3)


def copy_bandwidth_gbps(device: torch.device, timer) -> float:
    numel = (1 << 28) if device.type == "cuda" else (1 << 22)
    src = torch.empty(numel, dtype=torch.float32, device=device).normal_()
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return 2 * src.numel() * src.element_size() / ms / 1e6


def aggregation_candidates(indptr, indices, x, scale) -> dict[str, Callable[[], torch.Tensor]]:
    """GCN-normalised sum ``s * (A (s * x))`` by every implementation available here."""
    from gnnrec.kernels import aggregate

    n = indptr.numel() - 1
    rows = torch.repeat_interleave(torch.arange(n, device=x.device), indptr[1:] - indptr[:-1])
    cols = indices.long()
    weight = (scale[rows] * scale[cols]).to(x.dtype)
    adj = torch.sparse_csr_tensor(indptr, cols, weight, (n, x.shape[0]))
    candidates = {
        "triton (ours)": lambda: aggregate(
            indptr, indices, x, row_scale=scale, col_scale=scale, backend="triton", validate=False
        ),
        CUSPARSE: lambda: torch.sparse.mm(adj, x),
        "PyG gather + index_add_": lambda: torch.zeros(
            n, x.shape[1], dtype=x.dtype, device=x.device
        ).index_add_(0, rows, x[cols] * weight[:, None]),
    }
    try:
        import torch_sparse

        sparse = torch_sparse.SparseTensor(
            rowptr=indptr, col=cols, value=weight, sparse_sizes=(n, x.shape[0])
        )
        candidates["torch_sparse.matmul"] = lambda: torch_sparse.matmul(sparse, x)
    except ImportError:
        pass
    return candidates


def with_backward(fn: Callable[[], torch.Tensor], inputs: list[torch.Tensor], grad):
    def run():
        for t in inputs:
            t.grad = None
        fn().backward(grad)

    return run


def gcn_layer_candidates(indptr, indices, x) -> dict[str, Callable[[], torch.Tensor]]:
    """A GCN layer ``D^-1/2 (A + I) D^-1/2 X W + b``: ours, and PyG ``GCNConv`` two ways."""
    from torch_geometric.nn import GCNConv

    from gnnrec.kernels import aggregate

    n, f = indptr.numel() - 1, x.shape[1]
    rows = torch.repeat_interleave(torch.arange(n, device=x.device), indptr[1:] - indptr[:-1])
    loop = torch.arange(n, device=x.device)
    all_rows, all_cols = torch.cat([rows, loop]), torch.cat([indices.long(), loop])
    order = torch.argsort(all_rows * n + all_cols)
    sl_indices = all_cols[order].to(torch.int32)
    sl_indptr = torch.zeros_like(indptr)
    sl_indptr[1:] = torch.cumsum(torch.bincount(all_rows, minlength=n), 0)
    scale = inverse_sqrt_degree(sl_indptr[1:] - sl_indptr[:-1])
    linear = torch.nn.Linear(f, f).to(x.device)
    conv = GCNConv(f, f).to(x.device)
    edge_index = torch.stack([indices.long(), rows])
    adj_t = torch.sparse_csr_tensor(
        indptr, indices.long(), torch.ones(indices.numel(), device=x.device), (n, n)
    )
    return {
        "GCN layer, triton (ours)": lambda: aggregate(
            sl_indptr,
            sl_indices,
            linear(x),
            row_scale=scale,
            col_scale=scale,
            backend="triton",
            validate=False,
        ),
        "PyG GCNConv, edge_index": lambda: conv(x, edge_index),
        "PyG GCNConv, torch.sparse CSR": lambda: conv(x, adj_t),
    }


def timed(timer, fn: Callable[[], object]) -> tuple[float | None, str | None]:
    """``(ms, None)``, or ``(None, what failed)`` when the candidate raises (out of memory, a
    compile error): a failing candidate costs its own row, not the rest of the run."""
    try:
        return timer(fn), None
    except Exception as err:  # any candidate's failure is data, not the end of the bench
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None, f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
