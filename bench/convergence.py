"""Convergence: validation NDCG@20 epoch by epoch of LightGCN trained with BPR and with BPR
plus SimGCL's contrastive term (``train.objective = "bpr+simgcl"``), several seeds, as JSON
rows, a markdown table and a plot.

Every run is the ``lightgcn_ml_latest_small`` recipe (or ``--recipe``) for ``--epochs``
epochs with early stopping off (patience = epochs), seeded by ``data.seed`` and
``train.seed``; each objective's row keeps its per-epoch validation curve and its test
metrics at the best epoch. The target is the best of the BPR runs' mean validation NDCG@20
curve (over seeds) times ``--target``; a row says the first epoch its mean curve reaches it,
and the seconds that took (mean epoch time times epochs).

    gnnrec bench convergence [--seeds 0 1 2] [--epochs 30] [--target 1.0] [--set ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, seeded_report
from gnnrec.common.flags import real, whole
from gnnrec.config import add_override_argument

OBJECTIVES = ("bpr", "bpr+simgcl")
CURVE = "valid_ndcg@20"


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run

    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for objective in OBJECTIVES:
                run_dir = Path(tmp) / f"{objective}-{seed}"
                overrides = [
                    f'run_dir="{run_dir}"',
                    f"data.seed={seed}",
                    f"train.seed={seed}",
                    f'train.objective="{objective}"',
                    f"train.epochs={args.epochs}",
                    f"train.patience={args.epochs}",
                    "train.progress=false",
                    *args.overrides,
                ]
                metrics = train_run(load_config(None, overrides, base=RECIPES[args.recipe]()))
                history = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
                runs.append(
                    {
                        "objective": objective,
                        "seed": seed,
                        "curve": [row[CURVE] for row in history],
                        "epoch_seconds": statistics.mean(row["seconds"] for row in history),
                        "best_epoch": metrics["best_epoch"],
                        **{m: metrics[m] for m in ("recall@20", "ndcg@20")},
                    }
                )
    return summarise(runs, args)


def summarise(runs: list[dict], args: argparse.Namespace) -> list[dict]:
    """One row per objective: the mean curve over seeds, test metrics (mean and std), and the
    first epoch the mean curve reaches the target (None: never within the epochs)."""
    meta = provenance()
    by = {o: [r for r in runs if r["objective"] == o] for o in OBJECTIVES}
    curves = {
        o: [statistics.mean(c) for c in zip(*(r["curve"] for r in own))] for o, own in by.items()
    }
    target = args.target * max(curves["bpr"])
    rows = []
    for objective, own in by.items():
        curve = curves[objective]
        reached = next((e + 1 for e, v in enumerate(curve) if v >= target), None)
        seconds = statistics.mean(r["epoch_seconds"] for r in own)
        row = {"bench": "convergence", "objective": objective, "seeds": len(own)}
        row |= {"recipe": args.recipe, "target_ndcg@20": target, "epochs_to_target": reached}
        row |= {"seconds_to_target": None if reached is None else reached * seconds}
        row |= {"epoch_seconds": seconds, "mean_curve": curve}
        for metric in ("recall@20", "ndcg@20"):
            values = [r[metric] for r in own]
            row[metric] = statistics.mean(values)
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append({**row, "runs": own, **meta})
    return rows


def table(rows: list[dict]) -> str:
    shown = [
        {
            "objective": r["objective"],
            "seeds": r["seeds"],
            "epochs to target": r["epochs_to_target"] or f"not in {len(r['mean_curve'])}",
            "seconds to target": "-"
            if r["seconds_to_target"] is None
            else f"{r['seconds_to_target']:.0f}",
            "s / epoch": f"{r['epoch_seconds']:.2f}",
            "best valid NDCG@20": f"{max(r['mean_curve']):.4f}",
            **{m: f"{r[m]:.4f} ± {r[m + '_std']:.4f}" for m in ("recall@20", "ndcg@20")},
        }
        for r in rows
    ]
    target = rows[0]["target_ndcg@20"]
    columns = ["objective", "seeds", "epochs to target", "seconds to target", "s / epoch"]
    columns += ["best valid NDCG@20", "recall@20", "ndcg@20"]
    return f"target: validation NDCG@20 {target:.4f}\n\n" + markdown_table(shown, columns)


def plot(rows: list[dict], path: Path) -> Path:
    """Each objective's validation NDCG@20 by epoch (mean over seeds, the seeds' range
    shaded), the target as a line, the epoch each first reaches it marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in rows:
        epochs = range(1, len(r["mean_curve"]) + 1)
        curves = [run["curve"] for run in r["runs"]]
        label = {"bpr": "BPR", "bpr+simgcl": "BPR + SimGCL"}[r["objective"]]
        (line,) = ax.plot(epochs, r["mean_curve"], label=label)
        low, high = (list(map(f, zip(*curves))) for f in (min, max))
        ax.fill_between(epochs, low, high, alpha=0.2, color=line.get_color())
        if r["epochs_to_target"] is not None:
            e = r["epochs_to_target"]
            ax.plot([e], [r["mean_curve"][e - 1]], "o", color=line.get_color())
            ax.annotate(f"epoch {e}", (e, r["mean_curve"][e - 1]), textcoords="offset points",
                        xytext=(6, -12), fontsize=8, color=line.get_color())  # fmt: skip
    target = rows[0]["target_ndcg@20"]
    ax.axhline(target, color="gray", linestyle="--", linewidth=1, label="target")
    first = rows[0]
    ax.set(
        xlabel="epoch",
        ylabel="validation NDCG@20",
        title=f"LightGCN on {first['recipe']}: validation NDCG@20 by epoch "
        f"({first['seeds']} seeds)\n{first['device']}",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench convergence", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=whole(0), nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=whole(1), default=30, help="epochs a run")
    parser.add_argument(
        "--target",
        type=real(low=0.0),
        default=1.0,
        help="the target: this times the best of the BPR runs' mean validation NDCG@20",
    )
    parser.add_argument("--recipe", default="lightgcn_ml_latest_small", help="the runs' recipe")
    add_override_argument(parser, "config override for every run")
    add_output_argument(parser, "convergence")
    args = parser.parse_args(argv)
    return seeded_report(run(args), args, table, plot)


if __name__ == "__main__":
    main()
