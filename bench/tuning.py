"""Tuning: ASHA against a full grid on the same 16-point space, as JSON rows, a markdown table
and a plot.

Both searches are ``gnnrec tune`` (:func:`gnnrec.tune.tune_run`) over ``train.lr`` x
``train.l2`` (4 x 4 values) of the ``lightgcn_ml_latest_small`` recipe (``--epochs`` epochs a
trial, early stopping off), two trials at a time: the grid runs every trial to the end (FIFO),
ASHA stops the trials below the rung's best ``1 / reduction_factor`` at epochs ``grace``,
``grace * rf``, ... The cost is trial-seconds (the sum of the trials' own time, each trial
using about one core: the search's CPU time) and the search's wall time; the quality is the
test Recall@20 of the trial each search picks by validation Recall@20.

    gnnrec bench tuning [--epochs 30] [--grace 2] [--reduction-factor 3] [--set ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, seeded_report
from gnnrec.common.flags import whole
from gnnrec.config import add_override_argument

SPACE = """
[train.lr]
grid = [0.0005, 0.002, 0.005, 0.02]
[train.l2]
grid = [1e-5, 1e-4, 1e-3, 1e-2]
"""
LABELS = {"fifo": "full grid", "asha": "ASHA"}


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES
    from gnnrec.tune import TuneSettings, read_space, tune_run

    rows, meta = [], provenance()
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.toml"
        space.write_text(SPACE)
        dimensions = read_space(space)
        overrides = [f"train.epochs={args.epochs}", f"train.patience={args.epochs}"]
        base = load_config(
            None, [*overrides, *args.overrides], base=RECIPES["lightgcn_ml_latest_small"]()
        )
        for scheduler in ("fifo", "asha"):
            settings = TuneSettings(
                num_samples=1,
                scheduler=scheduler,
                max_concurrent=2,
                grace_period=args.grace,
                reduction_factor=args.reduction_factor,
            )
            tune_dir = Path(tmp) / scheduler
            began = time.perf_counter()
            best = tune_run(base, dimensions, tune_dir, settings)
            wall = time.perf_counter() - began
            trials = [json.loads(line) for line in (tune_dir / "trials.jsonl").open()]
            picked = json.loads((tune_dir / "trials" / best["trial"] / "metrics.json").read_text())
            rows.append(
                {
                    "bench": "tuning",
                    "search": scheduler,
                    "trials": len(trials),
                    "epochs": args.epochs,
                    "grace": args.grace,
                    "reduction_factor": args.reduction_factor,
                    "trial_seconds": sum(t["seconds"] for t in trials),
                    "wall_seconds": wall,
                    "epochs_run": sum(t["epochs_run"] for t in trials),
                    "picked": best["values"],
                    "picked_valid_recall@20": best["value"],
                    "picked_test_recall@20": picked["recall@20"],
                    "per_trial": trials,
                    **meta,
                }
            )
    grid = rows[0]
    for row in rows:
        row["cost_vs_grid"] = row["trial_seconds"] / grid["trial_seconds"]
        row["recall_vs_grid"] = row["picked_test_recall@20"] / grid["picked_test_recall@20"]
    return rows


def table(rows: list[dict]) -> str:
    shown = [
        {
            "search": LABELS[r["search"]],
            "trials": r["trials"],
            "epochs run": r["epochs_run"],
            "trial-seconds": f"{r['trial_seconds']:.0f} ({r['cost_vs_grid']:.0%})",
            "wall seconds": f"{r['wall_seconds']:.0f}",
            "picked (lr, l2)": f"{r['picked']['train.lr']:g}, {r['picked']['train.l2']:g}",
            "valid Recall@20": f"{r['picked_valid_recall@20']:.4f}",
            "test Recall@20": f"{r['picked_test_recall@20']:.4f} ({r['recall_vs_grid']:.1%})",
        }
        for r in rows
    ]
    return markdown_table(shown, list(shown[0]))


def plot(rows: list[dict], path: Path) -> Path:
    """Left: each trial's epochs (sorted) under each search; right: each search's
    trial-seconds, with the picked trial's test Recall@20 written on its bar."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in rows:
        epochs = sorted((t["epochs_run"] for t in r["per_trial"]), reverse=True)
        left.plot(range(1, len(epochs) + 1), epochs, "o-", label=LABELS[r["search"]])
    left.set(xlabel="trial (by epochs run)", ylabel="epochs run", title="epochs each trial ran")
    left.legend()
    names = [LABELS[r["search"]] for r in rows]
    seconds = [r["trial_seconds"] for r in rows]
    right.bar(names, seconds, color=["tab:gray", "tab:green"][: len(rows)])
    for x, r in enumerate(rows):
        text = f"{r['trial_seconds']:.0f} s ({r['cost_vs_grid']:.0%})\n"
        text += f"test Recall@20 {r['picked_test_recall@20']:.4f}"
        right.text(x, r["trial_seconds"] * 1.01, text, ha="center", va="bottom", fontsize=9)
    right.set_ylim(0, max(seconds) * 1.25)
    first = rows[0]
    right.set(
        ylabel="trial-seconds (about CPU-seconds)",
        title=f"16-point lr x l2 grid, LightGCN, {first['epochs']} epochs a trial\n"
        f"{first['device']}",
    )
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="gnnrec bench tuning", description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=whole(2), default=30, help="epochs a trial")
    parser.add_argument("--grace", type=whole(1), default=2, help="ASHA's first rung (epochs)")
    parser.add_argument(
        "--reduction-factor", type=whole(2), default=3, help="ASHA keeps 1 in this many"
    )
    add_override_argument(parser, "config override for every trial")
    add_output_argument(parser, "tuning")
    args = parser.parse_args(argv)
    args.seeds = [0]
    return seeded_report(run(args), args, table, plot)


if __name__ == "__main__":
    main()
