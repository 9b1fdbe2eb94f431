"""Weighted relations: what edge weights do to ranking quality, several seeds, as JSON rows, a
markdown table and a plot.

Each model trains on ml-latest-small (random split) once unweighted and once per weight in
``--weights`` (``data.edge_weight``: the rating, ``log1p(rating)``), same seeds, same budget.
The verdict of a weight against the unweighted graph, per model and metric: a **win** when the
weighted run is better on every seed and the mean gain exceeds the spread over seeds (the
larger of the two standard deviations), a **loss** the same the other way, else a **tie**.

    gnnrec bench relations [--seeds 0 1 2] [--weights rating] [--set train.epochs=30 ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, write_results
from gnnrec.common.flags import whole
from gnnrec.config import add_override_argument

# name -> (recipe, overrides)
MODELS = {
    "LightGCN": ("lightgcn_ml_latest_small", []),
    "text GCN": ("ml_latest_small_cpu", []),
}
METRICS = ("recall@20", "ndcg@20")
UNWEIGHTED = "none"


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run

    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for model, (recipe, extra) in MODELS.items():
                if args.models and model not in args.models:
                    continue
                for weight in (UNWEIGHTED, *args.weights):
                    run_dir = Path(tmp) / f"{model}-{weight}-{seed}".replace(" ", "_")
                    overrides = [
                        f'run_dir="{run_dir}"',
                        f'data.edge_weight="{weight}"',
                        f"data.seed={seed}",
                        f"train.seed={seed}",
                        "train.progress=false",
                        *extra,
                        *args.overrides,
                    ]
                    config = load_config(None, overrides, base=RECIPES[recipe]())
                    metrics = train_run(config)
                    row = {"model": model, "edge_weight": weight, "seed": seed}
                    results.append(row | {m: metrics[m] for m in METRICS})
    return summarise(results)


def verdict(weighted: list[float], plain: list[float]) -> str:
    """``win``, ``loss`` or ``tie`` of paired per-seed values (see the module docstring)."""
    gains = [w - p for w, p in zip(weighted, plain)]
    spread = max(
        statistics.stdev(weighted) if len(weighted) > 1 else 0.0,
        statistics.stdev(plain) if len(plain) > 1 else 0.0,
    )
    mean = statistics.mean(gains)
    if all(g > 0 for g in gains) and mean > spread:
        return "win"
    if all(g < 0 for g in gains) and -mean > spread:
        return "loss"
    return "tie"


def summarise(results: list[dict]) -> list[dict]:
    """One row per (model, edge weight): mean and std over seeds, and for a weight its verdict
    against the unweighted runs of the same seeds."""
    rows, meta = [], provenance()
    for model in dict.fromkeys(r["model"] for r in results):
        runs = {
            weight: sorted(
                (r for r in results if (r["model"], r["edge_weight"]) == (model, weight)),
                key=lambda r: r["seed"],
            )
            for weight in dict.fromkeys(r["edge_weight"] for r in results if r["model"] == model)
        }
        for weight, own in runs.items():
            row = {"bench": "relations", "model": model, "edge_weight": weight, "seeds": len(own)}
            for metric in METRICS:
                values = [r[metric] for r in own]
                row[metric] = statistics.mean(values)
                row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
                if weight != UNWEIGHTED:
                    plain = [r[metric] for r in runs[UNWEIGHTED]]
                    row[f"{metric}_verdict"] = verdict(values, plain)
            rows.append({**row, "runs": own, **meta})
    return rows


def table(rows: list[dict]) -> str:
    shown = [
        {
            "model": r["model"],
            "data.edge_weight": r["edge_weight"],
            "seeds": r["seeds"],
            **{
                m: f"{r[m]:.4f} ± {r[m + '_std']:.4f}"
                + (f" ({r[m + '_verdict']})" if m + "_verdict" in r else "")
                for m in METRICS
            },
        }
        for r in rows
    ]
    return markdown_table(shown, ["model", "data.edge_weight", "seeds", *METRICS])


def plot(rows: list[dict], path: Path) -> Path:
    """Recall@20 and NDCG@20 (mean ± std over seeds) per model, unweighted and each weight side
    by side, each weight's verdict written over its bars."""
    plt = pyplot()
    models = list(dict.fromkeys(r["model"] for r in rows))
    weights = list(dict.fromkeys(r["edge_weight"] for r in rows))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(6 * len(METRICS), 4.2), squeeze=False)
    width = 0.8 / len(weights)
    for ax, metric in zip(axes[0], METRICS):
        for k, weight in enumerate(weights):
            chosen = [
                next((r for r in rows if (r["model"], r["edge_weight"]) == (m, weight)), None)
                for m in models
            ]
            places = [p + (k - (len(weights) - 1) / 2) * width for p in range(len(models))]
            label = "unweighted" if weight == UNWEIGHTED else f"weight = {weight}"
            values = [r[metric] if r else 0.0 for r in chosen]
            ax.bar(
                places,
                values,
                width,
                yerr=[r[f"{metric}_std"] if r else 0.0 for r in chosen],
                capsize=3,
                label=label,
            )
            for x, value, r in zip(places, values, chosen):
                if r and f"{metric}_verdict" in r:
                    ax.text(x, value * 1.02, r[f"{metric}_verdict"], ha="center", fontsize=8)
        ax.set_xticks(range(len(models)), models)
        name = metric.replace("recall", "Recall").replace("ndcg", "NDCG")
        ax.set(title=f"{name}, ml-latest-small (mean ± std over seeds)", ylabel=name)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench relations", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=whole(0), nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--weights", nargs="+", default=["rating"], help="data.edge_weight values to compare"
    )
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="default: all")
    add_override_argument(parser, "config override for every run")
    add_output_argument(parser, "relations")
    args = parser.parse_args(argv)
    rows = run(args)
    out = write_results(rows, args.output)
    markdown = table(rows)
    out.with_suffix(".md").write_text(
        f"{rows[0]['device']}, torch {rows[0]['torch']}, git {rows[0]['git_sha']}, "
        f"{rows[0]['date']}; seeds {args.seeds}; overrides {args.overrides}\n\n{markdown}\n"
    )
    png = plot(rows, out.with_suffix(".png"))
    print(markdown)
    print(f"written: {out}, {out.with_suffix('.md')}, {png}")
    return rows


if __name__ == "__main__":
    main()
