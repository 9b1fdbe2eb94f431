"""The device check that opens every kernel benchmark: the Triton aggregation's outputs and
gradients on the benchmark's device against fp64 references, in three dtypes, split rows or
not (the tolerance table of :mod:`gnnrec.kernels.tolerances`, times a margin for long sums)."""

from __future__ import annotations

import torch

from gnnrec.bench.graphs import TINY, GraphSpec, synthetic_csr
from gnnrec.kernels.tolerances import TOLERANCES


def check_on_device(device: torch.device) -> list[dict]:
    """Triton against the fp64 torch reference on this device: every reduction and dtype, split
    heavy rows, forward and gradients. The interpreter is not the GPU: this is the GPU check."""
    from gnnrec.kernels import aggregate, aggregate_reference
    from gnnrec.kernels.reference import max_gradients_first_tie
    from gnnrec.kernels.schedule import ScheduleParams

    spec = GraphSpec("check", 3000, 60_000, 1.1, 0.5) if device.type == "cuda" else TINY[0]
    indptr, indices = synthetic_csr(spec, device, seed=1)
    g = torch.Generator(device=device).manual_seed(0)
    rows = []
    tolerance = {d: TOLERANCES[d]["rtol"] for d in (torch.float32, torch.bfloat16, torch.float16)}
    for dtype, reduce, params in [
        (d, r, p)
        for d in (torch.float32, torch.bfloat16, torch.float16)
        for r in ("sum", "mean", "max")
        for p in (ScheduleParams(), ScheduleParams(heavy_threshold=64, chunk_edges=32))
    ]:
        x = torch.randn(spec.num_nodes, 72, generator=g, device=device).to(dtype)
        values = torch.randn(indices.numel(), generator=g, device=device).to(dtype)
        x.requires_grad_(True)
        values.requires_grad_(True)
        out = aggregate(
            indptr, indices, x, edge_values=values, reduce=reduce, backend="triton", params=params
        )
        xd = x.detach().double().requires_grad_(True)
        vd = values.detach().double().requires_grad_(True)
        ref = aggregate_reference(indptr, indices, xd, edge_values=vd, reduce=reduce)
        grad = torch.randn(out.shape, generator=g, device=device).to(dtype)
        got = torch.autograd.grad(out, (x, values), grad)
        if reduce == "max":  # ties (frequent in bf16) go to the first edge, as in the kernel
            want = max_gradients_first_tie(indptr, indices, xd.detach(), vd.detach(), grad)
        else:
            want = torch.autograd.grad(ref, (xd, vd), grad.double())
        errors = [
            ((a.double() - b) / b.abs().max().clamp(min=1)).abs().max().item()
            for a, b in zip((out, *got), (ref, *want))
        ]
        rows.append(
            {
                "bench": "kernels-check",
                "dtype": str(dtype).split(".")[-1],
                "reduce": reduce,
                "split_heavy_rows": params.heavy_threshold == 64,
                "max_rel_err_out": errors[0],
                "max_rel_err_dx": errors[1],
                "max_rel_err_dvalues": errors[2],
                "ok": max(errors) <= 4 * tolerance[dtype],
            }
        )
    return rows
