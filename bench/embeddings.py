"""ID tables on 2 workers: a dense ``nn.Embedding`` under DDP and Adam (today's default) against
the row-sharded table with row-wise Adagrad, in one run: bytes a worker sends per step, step
time, and the share of the table and its optimizer state each worker holds (each sharded
worker draws only its rows of the initial table, block by block).

    gnnrec bench embeddings [--nodes 1000000 10000000] [--dim 64] [--lookup 50000] [--steps 20]

Each step every worker looks up ``--lookup`` ids drawn from a power law over the nodes (the
nodes of a sampled subgraph), takes a squared loss on their rows and updates the table. Two
gloo processes on this machine; the dense baseline runs where its memory fits (weights, their
gradient and Adam's two moments on every worker: 16 bytes a value), else its all-reduce size
is given without a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, write_results
from gnnrec.common.flags import real, whole

TABLES = ("dense", "sharded")


def _ids(nodes: int, count: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    # power law: a few hot ids, a long tail (u^3 of a uniform u)
    return (torch.rand(count, generator=g).pow(3) * nodes).long()


def worker(table: str, rank: int, port: int, args: argparse.Namespace) -> dict:
    """One rank's steps; its facts (seconds per step, bytes sent per step, table bytes)."""
    import torch
    import torch.distributed as dist
    from torch import nn

    from gnnrec.train.sharded_table import ShardedTable, drawn_rows

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    sent = [0]
    if table == "sharded":  # each rank draws only its rows, as the trainer does
        rows = drawn_rows(args.nodes, args.dim, 0.1, (0, 0), rank, world=2)
        module = ShardedTable(rows, args.nodes, lr=0.05)
        table_bytes = module.shard.nbytes + module.state.nbytes
        total_bytes = args.nodes * (args.dim + 1) * 4  # the whole table and its Adagrad state
    else:
        init = torch.randn(args.nodes, args.dim, generator=torch.Generator().manual_seed(0)) * 0.1
        module = nn.parallel.DistributedDataParallel(
            nn.Embedding.from_pretrained(init, freeze=False)
        )
        del init
        optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)

        def count(state, bucket):
            sent[0] += bucket.buffer().numel() * bucket.buffer().element_size()
            return default_hooks.allreduce_hook(state, bucket)

        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        module.register_comm_hook(None, count)
        table_bytes = total_bytes = args.nodes * args.dim * 4 * 3  # weights, Adam's 2 moments
    times = []
    for step in range(args.warmup + args.steps):
        ids = _ids(args.nodes, args.lookup, seed=1000 * step + rank)
        began = time.perf_counter()
        rows = module(ids)
        loss = (rows - 1.0).pow(2).sum()
        if table == "sharded":
            module.zero_grad()
            loss.backward()
            module.step()
        else:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - began)
    sent_bytes = module.bytes_sent if table == "sharded" else sent[0]
    dist.destroy_process_group()
    steps = args.warmup + args.steps
    return {
        "seconds_per_step": sorted(times)[len(times) // 2],
        "bytes_sent_per_step": sent_bytes / steps,
        "table_fraction": table_bytes / total_bytes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_pair(table: str, nodes: int, args: argparse.Namespace) -> list[dict]:
    port = _free_port()
    command = [sys.executable, "-m", "gnnrec.bench.embeddings", "--nodes", str(nodes)]
    command += ["--dim", str(args.dim), "--lookup", str(args.lookup)]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    ranks = [
        subprocess.Popen(
            [*command, "--child", table, str(rank), str(port)], stdout=subprocess.PIPE, text=True
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=3600)[0] for p in ranks]
    if any(p.returncode for p in ranks):
        raise RuntimeError(f"{table} table at {nodes} nodes: a worker failed")
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


def run(args: argparse.Namespace) -> list[dict]:
    rows = []
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for nodes in args.nodes:
        full_bytes = nodes * args.dim * 4
        measured = {}
        for table in TABLES:
            need = 2 * nodes * args.dim * 4 * (5 if table == "dense" else 2)
            if need > args.memory_fraction * memory:
                measured[table] = None
                continue
            measured[table] = _run_pair(table, nodes, args)
        for table in TABLES:
            workers = measured[table]
            row = {
                "bench": "embeddings",
                "table": table,
                "nodes": nodes,
                "dim": args.dim,
                "lookup_per_worker": args.lookup,
                "workers": 2,
                "table_fraction_per_worker": None,
                **provenance(),
            }
            if workers is None:
                # not run (memory); DDP all-reduces the whole gradient each step
                row.update(bytes_sent_per_step=float(full_bytes), note="not run: memory")
            else:
                row.update(
                    seconds_per_step=max(w["seconds_per_step"] for w in workers),
                    bytes_sent_per_step=max(w["bytes_sent_per_step"] for w in workers),
                    table_fraction_per_worker=max(w["table_fraction"] for w in workers),
                    peak_rss_mb=max(w["peak_rss_mb"] for w in workers),
                )
            rows.append(row)
        dense, sharded = rows[-2], rows[-1]
        sharded["bytes_vs_dense"] = dense["bytes_sent_per_step"] / sharded["bytes_sent_per_step"]
        if "seconds_per_step" in dense and "seconds_per_step" in sharded:
            sharded["speed_vs_dense"] = dense["seconds_per_step"] / sharded["seconds_per_step"]
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench embeddings", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--nodes", type=whole(), nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dim", type=whole(), default=64)
    parser.add_argument("--lookup", type=whole(), default=50_000, help="ids per worker per step")
    parser.add_argument("--steps", type=whole(), default=20)
    parser.add_argument("--warmup", type=whole(0), default=2)
    parser.add_argument(
        "--memory-fraction",
        type=real(high=1.0, high_open=False),
        default=0.6,
        help=argparse.SUPPRESS,
    )
    add_output_argument(parser, "embeddings")
    parser.add_argument(
        "--child", nargs=3, metavar=("TABLE", "RANK", "PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        args.nodes = args.nodes[0]
        print(json.dumps(worker(args.child[0], int(args.child[1]), int(args.child[2]), args)))
        return []
    rows = run(args)
    out = write_results(rows, args.output)
    print(f"{rows[0]['device']}, {rows[0]['cpu_count']} CPUs, 2 gloo workers")
    columns = ["table", "nodes", "seconds_per_step", "bytes_sent_per_step"]
    columns += ["table_fraction_per_worker", "peak_rss_mb", "bytes_vs_dense", "speed_vs_dense"]
    print(markdown_table(rows, columns))
    print(f"written: {out}, {plot(rows, out.with_suffix('.png'))}")
    return rows


def plot(rows: list[dict], path: Path) -> Path:
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    sizes = sorted({r["nodes"] for r in rows})
    for offset, table in zip((-0.2, 0.2), TABLES):
        mine = {r["nodes"]: r for r in rows if r["table"] == table}
        x = [i + offset for i in range(len(sizes))]
        bars = axes[0].bar(
            x, [mine[n]["bytes_sent_per_step"] / 2**20 for n in sizes], 0.4, label=table
        )
        for bar, n in zip(bars, sizes):
            if "note" in mine[n]:  # not run: DDP's all-reduce size, computed
                bar.set_hatch("//")
                bar.set_alpha(0.5)
                axes[0].annotate(
                    "computed", (bar.get_x() + 0.2, bar.get_height()), ha="center", fontsize=7
                )
        axes[1].bar(x, [mine[n].get("seconds_per_step") or 0 for n in sizes], 0.4, label=table)
    for ax, label in zip(axes, ("MiB a worker sends per step", "seconds per step")):
        ax.set_xticks(range(len(sizes)), [f"{n:,} nodes" for n in sizes])
        ax.set(ylabel=label)
        ax.legend()
    axes[0].set_yscale("log")
    axes[1].set_title("a missing bar: not run (memory)", fontsize=8)
    fig.suptitle(f"ID tables on 2 workers, {rows[0]['dim']}-d ({rows[0]['device']})")
    return save_figure(fig, path)


if __name__ == "__main__":
    main()
