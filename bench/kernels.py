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
from pathlib import Path

import torch

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.graphs import FULL_SIZE, TINY, synthetic_csr
from gnnrec.bench.harness import (
    markdown_table,
    provenance,
    pyplot,
    write_results,
)
from gnnrec.bench.kernel_candidates import (
    CUSPARSE,
    aggregation_candidates,
    copy_bandwidth_gbps,
    gcn_layer_candidates,
    timed,
    timer_for,
    with_backward,
)
from gnnrec.bench.kernel_check import check_on_device
from gnnrec.bench.kernel_sweeps import tile_sweep
from gnnrec.common.flags import whole
from gnnrec.kernels.csr import inverse_sqrt_degree


def run(args: argparse.Namespace, emit: Callable[[list[dict]], None]) -> list[dict]:
    """Every row, also handed to ``emit`` as soon as its part is done (the device check and the
    copy bandwidth, then one (graph, width, dtype) group at a time), so a run cut short keeps
    what it measured; a candidate that fails gets a row with its ``error``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    timer = timer_for(device)
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
                    forward = timed(timer, fn)
                    x.requires_grad_(True)
                    both = timed(timer, with_backward(fn, [x], grad))
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
            ms, error = timed(timer, with_backward(fn, [x], grad))
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
    """Median ms of each implementation, log scale: a row of panels per graph (forward,
    forward+backward, and the GCN layer), bars grouped by feature width and dtype."""
    plt = pyplot()

    timed = [r for r in rows if r["bench"] in ("aggregate", "gcn-layer") and r["ms"]]
    graphs = sorted({r["graph"] for r in timed})
    panels = [("aggregate", "forward"), ("aggregate", "forward+backward"), ("gcn-layer", None)]
    impls = sorted({r["impl"] for r in timed})
    colors = {impl: f"C{k}" for k, impl in enumerate(impls)}
    fig, axes = plt.subplots(
        len(graphs), 3, figsize=(15, 3.2 * len(graphs) + 0.8), squeeze=False,
        gridspec_kw={"width_ratios": [3, 3, 1]},
    )  # fmt: skip
    for axes_row, graph in zip(axes, graphs):
        for ax, (bench, mode) in zip(axes_row, panels):
            mine = [
                r
                for r in timed
                if r["graph"] == graph and r["bench"] == bench and mode in (None, r["pass"])
            ]
            groups = sorted({(r["F"], r["dtype"]) for r in mine})
            present = [impl for impl in impls if any(r["impl"] == impl for r in mine)]
            width = 0.8 / max(len(present), 1)
            for k, impl in enumerate(present):
                at = {(r["F"], r["dtype"]): r["ms"] for r in mine if r["impl"] == impl}
                xs = [i + k * width for i, g in enumerate(groups) if g in at]
                ax.bar(xs, [at[g] for g in groups if g in at], width, color=colors[impl])
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
            ax.set_xticklabels([f"F={f}\n{d}" for f, d in groups], fontsize=7)
            ax.set_yscale("log")
            ax.set_title(f"{graph}: {mode or 'GCN layer'}", fontsize=9, loc="left")
        axes_row[0].set_ylabel("ms (median)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[impl]) for impl in impls]
    fig.suptitle(f"sparse aggregation on {rows[0]['device']}", fontsize=10)
    fig.legend(handles, impls, fontsize=8, ncol=min(len(impls), 3), loc="lower center")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench kernels", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tiny", action="store_true", help="tiny graphs (forced without a GPU)")
    parser.add_argument("--widths", type=whole(), nargs="+", default=[128, 64, 256])
    parser.add_argument("--graphs", nargs="+", help="names of the graphs to run (default: all)")
    add_output_argument(parser, "kernels")
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
