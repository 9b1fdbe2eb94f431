"""The kernel benchmark's sweeps: tile sizes and heavy-row thresholds of the Triton
aggregation on one graph, and node orders (how rows are numbered) against cuSPARSE."""

from __future__ import annotations

from functools import partial

import torch

from gnnrec.bench.graphs import GraphSpec, synthetic_csr
from gnnrec.bench.kernel_candidates import CUSPARSE, aggregation_candidates, timed
from gnnrec.kernels.csr import inverse_sqrt_degree


def tile_sweep(spec: GraphSpec, device: torch.device, timer, tiny: bool) -> list[dict]:
    """Forward time of our kernel on the first graph at F = 128 (8 when tiny) over tile sizes
    ``block_e`` and light-row packing ``pack_edges`` (``tile-sweep``), then over the launch's
    ``num_warps`` and ``num_stages`` (``launch-sweep``), beside cuSPARSE: data for tuning the
    defaults (32, 256 and Triton's 4 warps, 3 stages) on the card at hand."""
    from gnnrec.kernels import aggregate
    from gnnrec.kernels.schedule import ScheduleParams

    indptr, indices = synthetic_csr(spec, device)
    scale = inverse_sqrt_degree(indptr[1:] - indptr[:-1])
    f = 8 if tiny else 128
    g = torch.Generator(device=device).manual_seed(0)
    rows = []
    for dtype in [torch.float32] if tiny else [torch.float32, torch.bfloat16]:
        x = torch.randn(spec.num_nodes, f, generator=g, device=device).to(dtype)
        cusparse, _ = timed(timer, aggregation_candidates(indptr, indices, x, scale)[CUSPARSE])
        for block_e in (16, 32) if tiny else (16, 32, 64):
            for pack in (128, 256) if tiny else (128, 256, 512):
                params = ScheduleParams(pack_edges=pack)
                run = partial(
                    aggregate, indptr, indices, x, row_scale=scale, col_scale=scale,
                    backend="triton", validate=False, params=params, block_e=block_e,
                )  # fmt: skip
                ms, error = timed(timer, run)
                rows.append(
                    {"bench": "tile-sweep", "graph": spec.name, "F": f,
                     "dtype": str(dtype).split(".")[-1], "block_e": block_e, "pack_edges": pack,
                     "ms": ms, "speedup_vs_cusparse": cusparse / ms if ms and cusparse else None,
                     **({"error": error} if error else {})}
                )  # fmt: skip
        # The launch: warps per program and pipeline stages (the defaults are 4 and 3; one warp
        # per row tile keeps the per-row reduction inside a warp, without barriers).
        warps, stages = ((1, 4), (2,)) if tiny else ((1, 2, 4, 8), (1, 2, 3))
        launches = [
            (block_e, num_warps, num_stages, once)
            for block_e in (16, 32) for num_warps in warps for num_stages in stages
            for once in (False, True)
        ]  # fmt: skip
        for block_e, num_warps, num_stages, once in launches:
            run = partial(
                aggregate, indptr, indices, x, row_scale=scale, col_scale=scale,
                backend="triton", validate=False, block_e=block_e, num_warps=num_warps,
                num_stages=num_stages, reduce_once=once,
            )  # fmt: skip
            ms, error = timed(timer, run)
            rows.append(
                {"bench": "launch-sweep", "graph": spec.name, "F": f,
                 "dtype": str(dtype).split(".")[-1], "block_e": block_e,
                 "num_warps": num_warps, "num_stages": num_stages, "reduce_once": once,
                 "ms": ms, "speedup_vs_cusparse": cusparse / ms if ms and cusparse else None,
                 **({"error": error} if error else {})}
            )  # fmt: skip
        rows += order_sweep(indptr, indices, x, cusparse, spec.name, timer)
    return rows


def order_sweep(indptr, indices, x, cusparse: float | None, graph: str, timer) -> list[dict]:
    """Our kernel (and cuSPARSE) on the graph relabelled by each locality order
    (:mod:`gnnrec.kernels.node_order`), against cuSPARSE on the graph as given; with the time
    to build the order and relabel."""
    import time

    from gnnrec.kernels.node_order import ORDERS, node_order, permute_csr

    rows = []
    for kind in ORDERS:
        began = time.perf_counter()
        perm = node_order(indptr, indices, kind)
        p_indptr, p_indices = permute_csr(indptr, indices, perm)
        if x.is_cuda:
            torch.cuda.synchronize()
        build_s = time.perf_counter() - began
        p_x = x[perm]
        scale = inverse_sqrt_degree(p_indptr.diff())
        candidates = aggregation_candidates(p_indptr, p_indices, p_x, scale)
        for impl in ("triton (ours)", CUSPARSE):
            ms, error = timed(timer, candidates[impl])
            rows.append(
                {"bench": "order-sweep", "graph": graph, "F": x.shape[1],
                 "dtype": str(x.dtype).split(".")[-1], "order": kind, "impl": impl,
                 "order_build_s": build_s, "ms": ms,
                 "speedup_vs_cusparse_as_given": cusparse / ms if ms and cusparse else None,
                 **({"error": error} if error else {})}
            )  # fmt: skip
    return rows
