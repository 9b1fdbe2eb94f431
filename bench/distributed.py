"""Data-parallel training throughput: the same run in one process and on Ray Train with 1, 2,
... workers, in one invocation. Per layout: training examples/s (median epoch, validation
excluded), optimizer steps/s, the bytes DDP all-reduces per step (counted by a comm hook) and
each worker's memory. JSON rows, a markdown table and a bar plot.

    gnnrec bench distributed [--workers 0 1 2] [--set train.mode=sampled ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, write_results
from gnnrec.common.flags import whole
from gnnrec.config import add_override_argument

# ml-latest-small, ID embeddings only (no text to encode), neighbor-sampled like web-scale runs.
DEFAULTS = [
    "model.text_features=false",
    "train.mode=sampled",
    "train.fanouts=[10, 5]",
    "model.layers=2",
    "train.epochs=3",
    "train.eval_every=1000",  # validation only after the last epoch, outside the timings
    "train.progress=false",
]


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run

    rows = []
    partitions = max(max(args.workers), 1)
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            run_dir = Path(tmp) / f"workers-{workers}"
            overrides = [
                f'run_dir="{run_dir}"',
                *DEFAULTS,
                f"parallel.num_workers={workers}",
                f"parallel.partitions={partitions}",
                *args.overrides,
            ]
            config = load_config(None, overrides, base=RECIPES[args.recipe]())
            metrics = train_run(config)
            history = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
            seconds = statistics.median(row["seconds"] for row in history)
            facts = (
                json.loads((run_dir / "workers.json").read_text())
                if (run_dir / "workers.json").exists()
                else []
            )
            rows.append(
                {
                    "bench": "distributed",
                    "layout": f"{workers} Ray worker{'s' if workers > 1 else ''}"
                    if workers
                    else "one process (no Ray)",
                    "workers": workers,
                    "mode": config.train.mode,
                    "partitions": partitions,
                    "epoch_seconds": seconds,
                    "examples_per_s": history[0]["examples"] / seconds,
                    "steps_per_s": history[0]["step"] / seconds,  # a fresh run: steps/epoch
                    "allreduce_mb_per_step": (
                        facts[0]["allreduce_bytes"] / max(facts[0]["steps"], 1) / 1e6
                        if facts
                        else 0.0
                    ),
                    "worker_uss_mb": (
                        max(w["memory_end"]["uss"] for w in facts) / 1e6 if facts else None
                    ),
                    "recall@20": metrics["recall@20"],
                    "config": {"recipe": args.recipe, "overrides": [*DEFAULTS, *args.overrides]},
                    **provenance(),
                }
            )
    return rows


def _mode(row: dict) -> str:
    """The training mode of a row (recorded since it was; else the last ``train.mode``
    override, the recipe's ``full`` without one)."""
    if "mode" in row:
        return row["mode"]
    modes = [o.split("=", 1)[1] for o in row["config"]["overrides"] if o.startswith("train.mode=")]
    return modes[-1] if modes else "full"


def _layout(row: dict) -> str:
    workers = row["workers"]
    return f"{workers} Ray worker{'s' * (workers > 1)}" if workers else "one process\n(no Ray)"


def plot(rows: list[dict], path: Path) -> Path:
    """Training examples/s of each layout, one group of bars per training mode (full-graph or
    sampled), each mode's latest measurement."""
    plt = pyplot()
    latest = {(_mode(r), r["workers"]): r for r in rows}
    modes = sorted({mode for mode, _ in latest})
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(modes), 1)
    layouts = sorted({w for _, w in latest})
    for n, mode in enumerate(modes):
        chosen = [latest[(mode, w)] for w in layouts if (mode, w) in latest]
        places = [layouts.index(r["workers"]) + (n - (len(modes) - 1) / 2) * width for r in chosen]
        bars = ax.bar(
            places, [r["examples_per_s"] for r in chosen], width, label=f"{mode} training"
        )
        ax.bar_label(bars, fmt="{:,.0f}", fontsize=7)
    ax.set_xticks(range(len(layouts)), [_layout({"workers": w}) for w in layouts], fontsize=8)
    device = rows[-1]["device"]
    ax.set(
        ylabel="training examples / s", title=f"Data-parallel throughput ({device}, CPU workers)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench distributed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workers", type=whole(0), nargs="+", default=[0, 1, 2])
    parser.add_argument("--recipe", default="ml_latest_small_cpu")
    add_override_argument(parser, "config override for every run")
    add_output_argument(parser, "distributed")
    args = parser.parse_args(argv)
    rows = run(args)
    out = write_results(rows, args.output)
    columns = [
        "layout",
        "epoch_seconds",
        "examples_per_s",
        "steps_per_s",
        "allreduce_mb_per_step",
        "worker_uss_mb",
        "recall@20",
    ]
    print(f"{rows[0]['device']}, {rows[0]['cpu_count']} CPUs, torch {rows[0]['torch']}")
    print(markdown_table(rows, columns))
    print(f"written: {out}, {plot(rows, out.with_suffix('.png'))}")
    return rows


if __name__ == "__main__":
    main()
