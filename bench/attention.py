"""Attention layers: our GAT layer (:class:`~gnnrec.models.gat_layer.GATLayer`, per-edge memory
``[E, H]``) against PyG's ``GATConv`` with the same weights (``[E, H, F]`` messages), forward and
backward on the same sampled batches of a products-shaped graph.

    gnnrec bench attention [--fanouts 15 10 5] [--batch-size 1024] [--heads 4] [--width 64]
                           [--device auto|cpu|cuda]

The graph is :mod:`gnnrec.bench.graphs`' products-like power-law graph (2.45M nodes, 61.9M
edges; ``--scale`` shrinks it); ``--batches`` batches are sampled with our sampler and saved, and
each implementation runs in a process of its own on them (``--batch-size 0``: on the whole
graph instead, where edges outnumber nodes ~25 to 1): one layer over each batch's whole
subgraph (``--in-width`` features in, ``--heads`` x ``--width`` out), a loss, backward. On the
CPU, peak memory is the largest rise of the process's resident memory during one batch's
forward and backward (:class:`~gnnrec.bench.harness.PeakResident`); on a GPU (``--device
cuda``, the default where there is one; our layer then runs the Triton kernels) the rise of
allocated device memory (:class:`~gnnrec.bench.harness.PeakDeviceMemory`), the batches moved
to the device first. Both, like time, over the batches after the first. A third run, the
projection ``W x`` alone under the same loss, is the floor of any GAT layer with a projection:
``memory_above_projection_vs_pyg`` compares what each attention adds to it. An implementation
that runs out of memory (the OOM killer, CUDA's error) gives a row with ``error`` instead of
numbers. First, :func:`check_on_device` holds our aggregation on the device to the fp64 oracle
(``attention-check`` rows); last, an ``attention-comparison`` row gives the ratios. JSON rows
(each written as soon as it is measured), markdown tables and a bar plot (memory and time).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.graphs import FULL_SIZE, TINY, GraphSpec, synthetic_csr
from gnnrec.bench.harness import (
    PeakDeviceMemory,
    PeakResident,
    markdown_table,
    provenance,
    pyplot,
    save_figure,
    write_results,
)
from gnnrec.common.flags import real, whole
from gnnrec.kernels.tolerances import TOLERANCES

# "projection": the layer's projection W x alone, with the same loss: what any GAT layer with
# a projection holds, whatever its attention; the rest of a peak is the attention's own.
IMPLEMENTATIONS = ("gnnrec", "pyg", "projection")
LABELS = {"gnnrec": "gnnrec GATLayer", "pyg": "PyG GATConv", "projection": "projection alone"}


def sample_batches(args: argparse.Namespace, path: Path) -> dict:
    """Samples ``args.batches`` subgraphs and saves them with features; their sizes."""
    from gnnrec.data.graph_store import CSR
    from gnnrec.train.sampler import NeighborSampler

    base = FULL_SIZE[0]
    spec = GraphSpec(
        base.name,
        int(base.num_nodes * args.scale),
        int(base.num_edges * args.scale),
        base.row_alpha,
        base.col_alpha,
    )
    # drawn on the bench's device (fast on a GPU), sampled on the CPU
    indptr, indices = synthetic_csr(spec, torch.device(args.device), seed=args.seed)
    indptr, indices = indptr.cpu(), indices.cpu()
    sampler = NeighborSampler(CSR(indptr, indices, spec.num_nodes), args.fanouts)
    g = torch.Generator().manual_seed(args.seed)
    batches = []
    for _ in range(args.batches + 1):  # one more: the first, not counted
        if args.batch_size:
            seeds = torch.randint(0, spec.num_nodes, (args.batch_size,), generator=g)
            csr = sampler.sample(seeds, g).csr
        else:  # the whole graph
            csr = CSR(indptr, indices, spec.num_nodes)
        x = torch.randn(csr.num_rows, args.in_width, generator=g)
        batches.append({"indptr": csr.indptr, "indices": csr.indices, "x": x})
    torch.save(batches, path)
    edges = [b["indices"].numel() for b in batches[1:]]
    nodes = [b["x"].shape[0] for b in batches[1:]]
    return {
        "graph": spec.name,
        "graph_nodes": spec.num_nodes,
        "graph_edges": spec.num_edges,
        "edges_per_batch": statistics.mean(edges),
        "nodes_per_batch": statistics.mean(nodes),
    }


def _layers(args: argparse.Namespace):
    """PyG's ``GATConv`` and our layer holding the same weights."""
    from torch_geometric.nn import GATConv

    from gnnrec.models.gat_layer import GATLayer

    torch.manual_seed(args.seed)
    conv = GATConv(args.in_width, args.width, heads=args.heads, add_self_loops=False, bias=False)
    ours = GATLayer(args.in_width, args.heads * args.width, args.heads)
    with torch.no_grad():
        ours.weight.copy_(conv.lin.weight)
        ours.att_src.copy_(conv.att_src[0])
        ours.att_dst.copy_(conv.att_dst[0])
    return conv, ours


def child(args: argparse.Namespace, implementation: str, path: Path) -> dict:
    """Runs one implementation over the saved batches in this process."""
    from gnnrec.data.graph_store import CSR
    from gnnrec.kernels.csr import edge_rows
    from gnnrec.models.graph_view import GraphView

    device = torch.device(args.device)
    batches = torch.load(path, weights_only=True)
    conv, ours = _layers(args)
    module = (conv if implementation == "pyg" else ours).to(device)
    if implementation == "projection":
        layer = lambda x, graph: torch.nn.functional.linear(x, ours.weight)  # noqa: E731
    else:
        layer = module

    def graph_of(indptr: torch.Tensor, indices: torch.Tensor, n: int):
        if implementation == "pyg":
            return torch.stack([indices.long(), edge_rows(indptr)])
        return GraphView.of(CSR(indptr, indices, n))

    def step(x: torch.Tensor, graph) -> torch.Tensor:
        loss = layer(x, graph).square().mean()
        loss.backward()
        module.zero_grad(set_to_none=True)
        return loss.detach()

    inputs = []
    for b in batches:
        indptr, indices, x = (b[key].to(device) for key in ("indptr", "indices", "x"))
        inputs.append((x, graph_of(indptr, indices, x.shape[0])))
    # the libraries' one-off setup on a ring of 64 nodes, so that the peak below is the
    # batches' own
    ring = torch.arange(64, device=device)
    ring_graph = graph_of(torch.arange(65, device=device), (ring + 1) % 64, 64)
    step(torch.randn(64, args.in_width, device=device), ring_graph)
    seconds, peaks, checksum = [], [], 0.0
    for x, graph in inputs:
        gc.collect()
        peak = PeakDeviceMemory(device) if device.type == "cuda" else PeakResident()
        with peak as memory:
            began = time.perf_counter()
            loss = step(x, graph)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds.append(time.perf_counter() - began)
        checksum += float(loss)
        peaks.append(memory.peak_mb)
    return {
        "seconds_per_batch": statistics.median(seconds[1:]),
        "peak_mb": max(peaks[1:]),
        "loss_sum": checksum,
    }


def check_on_device(device: torch.device, backend: str | None = None) -> list[dict]:
    """Our attention aggregation on this device (Triton on a GPU) against the fp64 oracle
    there (``[E, H, F]`` messages, autograd): fp32, bf16 and fp16, whole and split heavy rows,
    the output and the gradients for ``x``, ``src`` and ``dst``. The interpreter is not the
    GPU: this is the GPU check. ``backend``: the attention backend (default: ``triton`` on a
    GPU, else ``sparse``)."""
    from gnnrec.kernels import aggregate
    from gnnrec.kernels.attention import EdgeAttention, attention_reference
    from gnnrec.kernels.schedule import ScheduleParams

    spec = GraphSpec("check", 3000, 60_000, 1.1, 0.5) if device.type == "cuda" else TINY[0]
    indptr, indices = synthetic_csr(spec, device, seed=1)
    backend = backend or ("triton" if device.type == "cuda" else "sparse")
    g = torch.Generator(device=device).manual_seed(0)
    tolerance = {d: TOLERANCES[d]["rtol"] for d in (torch.float32, torch.bfloat16, torch.float16)}
    heads, width, rows = 4, 16, []
    for dtype in tolerance:
        for split in (False, True):
            params = ScheduleParams(heavy_threshold=64, chunk_edges=32) if split else None
            options = {"params": params} if backend == "triton" else {}
            leaves = [
                torch.randn(spec.num_nodes, heads * width, generator=g, device=device),
                torch.randn(spec.num_nodes, heads, generator=g, device=device) * 4,
                torch.randn(spec.num_nodes, heads, generator=g, device=device) * 4,
            ]
            leaves = [t.to(dtype).requires_grad_() for t in leaves]
            upstream = torch.randn(spec.num_nodes, heads * width, generator=g, device=device)
            upstream = upstream.to(dtype)
            outputs = []
            for precise in (False, True):
                inputs = (
                    [t.detach().double().requires_grad_() for t in leaves] if precise else leaves
                )
                x, src, dst = inputs
                attention = EdgeAttention(src, dst)
                if precise:
                    out = attention_reference(indptr, indices, x, attention)
                else:
                    out = aggregate(
                        indptr, indices, x, reduce="attention", attention=attention,
                        backend=backend, **options,
                    )  # fmt: skip
                grads = torch.autograd.grad(out, inputs, upstream.to(out.dtype))
                outputs.append([out.detach().double(), *(t.double() for t in grads)])
            errors = [
                ((a - b) / b.abs().max().clamp(min=1)).abs().max().item() for a, b in zip(*outputs)
            ]
            rows.append(
                {
                    "bench": "attention-check",
                    "backend": backend,
                    "dtype": str(dtype).split(".")[-1],
                    "split_heavy_rows": split,
                    "max_rel_err_out": errors[0],
                    "max_rel_err_dx": errors[1],
                    "max_rel_err_dsrc": errors[2],
                    "max_rel_err_ddst": errors[3],
                    "ok": max(errors) <= 10 * tolerance[dtype],
                }
            )
    return rows


def run(args: argparse.Namespace, emit: Callable[[list[dict]], object]) -> list[dict]:
    """The device check, then each implementation in a process of its own, then their
    comparison (``attention-comparison``: ours against PyG); every row is also handed to
    ``emit`` as soon as it is measured, so a run cut short keeps what it got."""
    checks = [{**r, **provenance()} for r in check_on_device(torch.device(args.device))]
    emit(checks)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batches.pt"
        shape = sample_batches(args, path)
        case = {**shape, "fanouts": args.fanouts, "batch_size": args.batch_size}
        case |= {"heads": args.heads, "width": args.width, "in_width": args.in_width}
        case["batches"] = args.batches
        for implementation in IMPLEMENTATIONS:
            command = [sys.executable, "-m", "gnnrec.bench.attention", *args.argv]
            command += ["--child", implementation, str(path)]
            out = subprocess.run(command, capture_output=True, text=True, check=False)
            if out.returncode == 0:
                result = json.loads(out.stdout.strip().splitlines()[-1])
            elif _out_of_memory(out):
                result = {"error": "out of memory", "peak_mb": None, "seconds_per_batch": None}
            else:
                raise RuntimeError(f"{implementation} failed:\n{out.stderr[-3000:]}")
            row = {"bench": "attention", "implementation": implementation, **case, **result}
            rows.append({**row, **provenance()})
            emit(rows[-1:])
    comparison = compare(*rows)
    if comparison:
        comparison = {"bench": "attention-comparison", **case, **comparison, **provenance()}
        emit([comparison])
    return checks + rows + ([comparison] if comparison else [])


def compare(ours: dict, pyg: dict, floor: dict) -> dict:
    """Ours against PyG: peak memory (in all, and above the projection's), speed, and whether
    the losses agree; empty when either side has no numbers."""
    if ours.get("error") or pyg.get("error"):
        return {}
    comparison = {
        "memory_vs_pyg": ours["peak_mb"] / pyg["peak_mb"] if pyg["peak_mb"] > 0 else None,
        "speed_vs_pyg": pyg["seconds_per_batch"] / ours["seconds_per_batch"],
        "same_losses": abs(ours["loss_sum"] - pyg["loss_sum"]) <= 1e-4 * abs(pyg["loss_sum"]),
    }
    if not floor.get("error") and pyg["peak_mb"] > floor["peak_mb"]:
        above = ours["peak_mb"] - floor["peak_mb"], pyg["peak_mb"] - floor["peak_mb"]
        comparison["memory_above_projection_vs_pyg"] = max(above[0], 0.0) / above[1]
    return comparison


def _out_of_memory(process: subprocess.CompletedProcess) -> bool:
    """A child killed by the kernel's OOM killer, or stopped by an allocation that failed
    (CUDA's out-of-memory error, torch's CPU allocator)."""
    failed = ("OutOfMemoryError", "DefaultCPUAllocator: can't allocate memory")
    return process.returncode == -9 or any(text in process.stderr for text in failed)


def _case(row: dict) -> str:
    if row["batch_size"] == 0:
        return f"whole graph\n{row['graph_nodes']:,} nodes"
    return f"sampled, batch {row['batch_size']}\nfanouts {row['fanouts']}"


def _readable(value: float) -> str:
    """A bar's value as people write it: ``2,564`` (MB), ``0.84`` (s)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def plot(rows: list[dict], path: Path) -> Path:
    """Memory and time of each implementation, for every case in ``rows``."""
    plt = pyplot()
    cases = list(dict.fromkeys(_case(r) for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in (
        (axes[0], "peak_mb", "peak memory, forward + backward (MB)"),
        (axes[1], "seconds_per_batch", "seconds per batch"),
    ):
        bars = zip((-0.27, 0, 0.27), IMPLEMENTATIONS, ("tab:orange", "tab:gray", "tab:olive"))
        for offset, name, color in bars:
            mine = {_case(r): r for r in rows if r["implementation"] == name}
            for i, case in enumerate(cases):
                if case not in mine:
                    continue
                value = mine[case][key]
                if value is None:  # out of memory
                    ax.text(i + offset, 0, "OOM", ha="center", va="bottom", fontsize=8)
                    continue
                bar = ax.bar(i + offset, value, 0.27, color=color, label=LABELS[name])
                ax.bar_label(bar, fmt=_readable, fontsize=7)
        ax.set_xticks(range(len(cases)), cases, fontsize=8)
        ax.set_ylabel(label, fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    legend = dict(zip(labels, handles))  # one entry per implementation
    axes[0].legend(legend.values(), legend.keys(), fontsize=8)
    r = rows[0]
    fig.suptitle(
        f"GAT layer, {r['heads']} heads x {r['width']}, products-like graph ({r['device']})",
        fontsize=9,
    )
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench attention", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--scale",
        type=real(high=1.0, high_open=False),
        default=1.0,
        help="fraction of products' size",
    )
    parser.add_argument("--fanouts", type=whole(), nargs="+", default=[15, 10, 5])
    parser.add_argument("--batch-size", type=whole(0), default=1024, help="0: the whole graph")
    parser.add_argument("--batches", type=whole(), default=5)
    parser.add_argument("--in-width", type=whole(), default=100)
    parser.add_argument("--heads", type=whole(), default=4)
    parser.add_argument("--width", type=whole(), default=64)
    parser.add_argument("--seed", type=whole(0), default=0)
    parser.add_argument("--device", default="auto", help="auto: cuda where there is one")
    add_output_argument(parser, "attention")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.child:
        print(json.dumps(child(args, args.child[0], Path(args.child[1]))))
        return []
    args.argv = [a for a in (argv if argv is not None else sys.argv[1:]) if a]
    out = Path(args.output)
    rows = run(args, lambda part: write_results(part, out))
    columns = ["implementation", "edges_per_batch", "peak_mb", "seconds_per_batch", "error"]
    print(markdown_table([r for r in rows if r["bench"] == "attention"], columns))
    columns = ["memory_vs_pyg", "memory_above_projection_vs_pyg", "speed_vs_pyg", "same_losses"]
    print(markdown_table([r for r in rows if r["bench"] == "attention-comparison"], columns))
    checks = [r for r in rows if r["bench"] == "attention-check"]
    print(
        f"device check ({checks[0]['backend']} against fp64): "
        f"{sum(r['ok'] for r in checks)}/{len(checks)} configurations within tolerance"
    )
    # the picture: every case measured at this run's commit (earlier invocations at it too)
    shas = {r["git_sha"] for r in rows if r["bench"] == "attention"}
    measured = [json.loads(line) for line in out.read_text().splitlines()]
    same = [r for r in measured if r.get("bench") == "attention" and r["git_sha"] in shas]
    print(f"written: {out}, {plot(same, out.with_suffix('.png'))}")
    return rows


if __name__ == "__main__":
    main()
