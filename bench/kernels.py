"""Aggregation kernel benchmark: our Triton kernels against cuSPARSE (``torch.sparse.mm``),
PyG's aggregation paths and torch-sparse, in one process, with the copy bandwidth measured in
the same run.

On a GPU: full-size synthetic graphs (products-like, uniform, very skewed), F in {64, 128,
256}, fp32 and bf16, forward and forward+backward, plus a GCN layer (F 128 -> 128, fp32)
against PyG ``GCNConv`` on ``edge_index`` and on a sparse adjacency. Without a GPU the same code
runs tiny graphs through the Triton interpreter, so the script cannot rot. Every run first
checks the Triton outputs and gradients on the device against fp64 references.

    gnnrec bench kernels [--tiny] [--output bench/results/kernels.jsonl]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from gnnrec.bench.graphs import FULL_SIZE, TINY, GraphSpec, synthetic_csr
from gnnrec.bench.harness import (
    markdown_table,
    median_seconds,
    provenance,
    pyplot,
    save_figure,
    write_results,
)
from gnnrec.kernels.csr import inverse_sqrt_degree
from gnnrec.kernels.tolerances import TOLERANCES

CUSPARSE = "torch.sparse.mm (cuSPARSE on GPU)"


def _timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
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


def _with_backward(fn: Callable[[], torch.Tensor], inputs: list[torch.Tensor], grad):
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


def _timed(timer, fn: Callable[[], object]) -> tuple[float | None, str | None]:
    """``(ms, None)``, or ``(None, what failed)`` when the candidate raises (out of memory, a
    compile error): a failing candidate costs its own row, not the rest of the run."""
    try:
        return timer(fn), None
    except Exception as err:  # any candidate's failure is data, not the end of the bench
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None, f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


def run(args: argparse.Namespace, emit: Callable[[list[dict]], None]) -> list[dict]:
    """Every row, also handed to ``emit`` as soon as its part is done (the device check and the
    copy bandwidth, then one (graph, width, dtype) group at a time), so a run cut short keeps
    what it measured; a candidate that fails gets a row with its ``error``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    timer = _timer(device)
    meta = provenance()
    import triton

    meta["triton"] = triton.__version__
    meta["interpreted"] = os.environ.get("TRITON_INTERPRET") == "1"
    rows = [{**r, **meta} for r in check_on_device(device)]
    bandwidth = copy_bandwidth_gbps(device, timer)
    rows.append({"bench": "copy", "GBps": bandwidth, **meta})
    emit(rows)
    specs = [
        s for s in (TINY if args.tiny else FULL_SIZE) if not args.graphs or s.name in args.graphs
    ]
    widths = [8] if args.tiny else args.widths
    dtypes = [torch.float32] if args.tiny else [torch.float32, torch.bfloat16]
    g = torch.Generator(device=device).manual_seed(0)
    for spec in specs:
        indptr, indices = synthetic_csr(spec, device)
        degree = indptr[1:] - indptr[:-1]
        graph = {
            "graph": spec.name,
            "nodes": spec.num_nodes,
            "edges": spec.num_edges,
            "max_degree": int(degree.max()),
        }
        scale = inverse_sqrt_degree(indptr[1:] - indptr[:-1])
        for f in widths:
            for dtype in dtypes:
                x = torch.randn(spec.num_nodes, f, generator=g, device=device).to(dtype)
                grad = torch.randn(spec.num_nodes, f, generator=g, device=device).to(dtype)
                nbytes = 8 * (spec.num_nodes + 1) + 4 * spec.num_edges + 8 * spec.num_nodes
                nbytes += 2 * spec.num_nodes * f * x.element_size()
                group = len(rows)
                for name, fn in aggregation_candidates(indptr, indices, x, scale).items():
                    x.requires_grad_(False)
                    forward = _timed(timer, fn)
                    x.requires_grad_(True)
                    both = _timed(timer, _with_backward(fn, [x], grad))
                    for mode, (ms, error) in (("forward", forward), ("forward+backward", both)):
                        gbps = nbytes / ms / 1e6 if ms and mode == "forward" else None
                        rows.append(
                            {
                                "bench": "aggregate",
                                **graph,
                                "F": f,
                                "dtype": str(dtype).split(".")[-1],
                                "pass": mode,
                                "impl": name,
                                "ms": ms,
                                "effective_GBps": gbps,
                                **({"error": error} if error else {}),
                                **meta,
                            }
                        )
                _add_speedups(rows[group:])
                emit(rows[group:])
        f = 8 if args.tiny else 128
        x = torch.randn(spec.num_nodes, f, generator=g, device=device, requires_grad=True)
        grad = torch.randn(spec.num_nodes, f, generator=g, device=device)
        group = len(rows)
        for name, fn in gcn_layer_candidates(indptr, indices, x).items():
            ms, error = _timed(timer, _with_backward(fn, [x], grad))
            rows.append(
                {
                    "bench": "gcn-layer",
                    **graph,
                    "F": f,
                    "dtype": "float32",
                    "pass": "forward+backward",
                    "impl": name,
                    "ms": ms,
                    **({"error": error} if error else {}),
                    **meta,
                }
            )
        _add_speedups(rows[group:])
        emit(rows[group:])
    if specs:
        sweep = [{**r, **meta} for r in tile_sweep(specs[0], device, timer, tiny=args.tiny)]
        rows += sweep
        emit(sweep)
    return rows


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
        cusparse, _ = _timed(timer, aggregation_candidates(indptr, indices, x, scale)[CUSPARSE])
        for block_e in (16, 32) if tiny else (16, 32, 64):
            for pack in (128, 256) if tiny else (128, 256, 512):
                params = ScheduleParams(pack_edges=pack)
                run = partial(
                    aggregate, indptr, indices, x, row_scale=scale, col_scale=scale,
                    backend="triton", validate=False, params=params, block_e=block_e,
                )  # fmt: skip
                ms, error = _timed(timer, run)
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
            ms, error = _timed(timer, run)
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
            ms, error = _timed(timer, candidates[impl])
            rows.append(
                {"bench": "order-sweep", "graph": graph, "F": x.shape[1],
                 "dtype": str(x.dtype).split(".")[-1], "order": kind, "impl": impl,
                 "order_build_s": build_s, "ms": ms,
                 "speedup_vs_cusparse_as_given": cusparse / ms if ms and cusparse else None,
                 **({"error": error} if error else {})}
            )  # fmt: skip
    return rows


def _add_speedups(rows: list[dict]) -> None:
    """``speedup_vs_cusparse`` (aggregate) and ``speedup_vs_...`` (GCN layer), same run."""

    def key(r):
        return (r["bench"], r.get("graph"), r.get("F"), r.get("dtype"), r.get("pass"))

    timed = [r for r in rows if r["ms"]]  # a failed candidate has no speedup
    baselines = {key(r): r["ms"] for r in timed if r.get("impl") == CUSPARSE}
    for r in timed:
        if r["bench"] == "aggregate" and key(r) in baselines:
            r["speedup_vs_cusparse"] = baselines[key(r)] / r["ms"]
    layers = {(key(r), r["impl"]): r["ms"] for r in timed if r["bench"] == "gcn-layer"}
    for r in timed:
        if r.get("impl") == "GCN layer, triton (ours)":
            for other in ("PyG GCNConv, edge_index", "PyG GCNConv, torch.sparse CSR"):
                if (key(r), other) in layers:
                    r[f"speedup_vs {other}"] = layers[(key(r), other)] / r["ms"]


def plot(rows: list[dict], path: Path) -> Path:
    plt = pyplot()

    timed = [r for r in rows if r["bench"] in ("aggregate", "gcn-layer") and r["ms"]]
    groups = sorted({(r["graph"], r["F"], r["dtype"], r["pass"]) for r in timed})
    impls = sorted({r["impl"] for r in timed})
    fig, ax = plt.subplots(figsize=(max(8, len(groups) * 0.9), 5))
    width = 0.8 / max(len(impls), 1)
    for k, impl in enumerate(impls):
        ms = [
            next(
                (
                    r["ms"]
                    for r in timed
                    if (r["graph"], r["F"], r["dtype"], r["pass"]) == grp and r["impl"] == impl
                ),
                0.0,
            )
            for grp in groups
        ]
        ax.bar([i + k * width for i in range(len(groups))], ms, width, label=impl)
    ax.set_xticks([i + 0.4 for i in range(len(groups))])
    ax.set_xticklabels([f"{g}\nF={f} {d}\n{p}" for g, f, d, p in groups], fontsize=6)
    ax.set_ylabel("ms (median)")
    ax.set_yscale("log")
    ax.set_title(f"aggregation on {rows[0]['device']}")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench kernels", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tiny", action="store_true", help="tiny graphs (forced without a GPU)")
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 64, 256])
    parser.add_argument("--graphs", nargs="+", help="names of the graphs to run (default: all)")
    parser.add_argument("--output", default="bench/results/kernels.jsonl")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        args.tiny = True
        if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError(
                "without a GPU the kernels need TRITON_INTERPRET=1 set before triton is imported"
            )
        os.environ["TRITON_INTERPRET"] = "1"
    out = Path(args.output)
    rows = run(args, lambda part: write_results(part, out))
    png = plot(rows, out.with_suffix(".png"))
    print(
        f"{rows[0]['device']}, torch {rows[0]['torch']}, triton {rows[0]['triton']}"
        f"{' (interpreter)' if rows[0]['interpreted'] else ''}"
    )
    checks = [r for r in rows if r["bench"] == "kernels-check"]
    print(
        f"device check: {sum(r['ok'] for r in checks)}/{len(checks)} configurations within "
        "tolerance"
    )
    print(f"copy bandwidth: {next(r['GBps'] for r in rows if r['bench'] == 'copy'):.1f} GB/s")
    timed = [r for r in rows if r["bench"] in ("aggregate", "gcn-layer")]
    print(
        markdown_table(
            timed,
            [
                "graph",
                "max_degree",
                "F",
                "dtype",
                "pass",
                "impl",
                "ms",
                "effective_GBps",
                "speedup_vs_cusparse",
            ],
        )
    )
    layers = [r for r in timed if r["impl"] == "GCN layer, triton (ours)"]
    print(
        markdown_table(
            layers,
            [
                "graph",
                "ms",
                "speedup_vs PyG GCNConv, edge_index",
                "speedup_vs PyG GCNConv, torch.sparse CSR",
            ],
        )
    )
    sweep = [r for r in rows if r["bench"] == "tile-sweep"]
    print(markdown_table(sweep, ["dtype", "block_e", "pack_edges", "ms", "speedup_vs_cusparse"]))
    print(f"written: {out}, {png}")
    return rows


if __name__ == "__main__":
    main()
