"""Recommendation quality: every model on a warm and a cold-start item split, several seeds,
mean and std, as JSON rows, a markdown table and a plot.

Models: the text-feature GCN (``ml_latest_small_cpu``; also without its cold dropout,
``model.cold_dropout = 0``), the same model with graph attention
(GAT, ``model.name = "gat"``) and NCF (NeuMF over the same text features and IDs, no graph),
LightGCN and MF with BPR (ID embeddings only, same budget and optimiser), and popularity;
plus, on the warm split, the GCN's rating head (MSE) against ``μ + b_u + b_i`` biases and
the global mean. Splits: ``random`` (per user 80/20), ``cold_items`` (20% of the items held
out with all their ratings; ranked among the held-out items, where ID-only models can only
guess) and ``new_users`` (10% of the users held out of training, the same test items as
``random``), where each held-out user is placed two ways: folded in from their training-period
items (``new users, fold-in``), and by the text their training-period items give them alone,
no interactions (``new users, text only``: text models); popularity beside both.

    gnnrec bench quality [--seeds 0 1 2] [--splits warm cold "new users"] [--set ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, seeded_report
from gnnrec.bench.held_out_users import (
    HeldOutUsers,
    embedding_scores,
    held_out_users,
    ranking_metrics,
)
from gnnrec.common.flags import whole
from gnnrec.config import add_override_argument

# name -> (recipe, overrides)
MODELS = {
    "text GCN": ("ml_latest_small_cpu", []),
    "text GCN, no cold dropout": ("ml_latest_small_cpu", ["model.cold_dropout=0"]),
    "text GAT": ("ml_latest_small_cpu", ["model.name=gat"]),
    "text NCF": ("ml_latest_small_cpu", ["model.name=ncf"]),
    "LightGCN": ("lightgcn_ml_latest_small", []),
    "MF (BPR)": ("mf_ml_latest_small", []),
}
SPLITS = {"warm": "random", "cold": "cold_items", "new users": "new_users"}
NEW_USERS = ("new users, fold-in", "new users, text only")  # the new-user split's placements


def _metrics_of(metrics: dict, split: str) -> dict[str, float]:
    """Recall/NDCG@20 overall (warm) or among the held-out items (cold)."""
    source = metrics["cold"] if split == "cold" else metrics
    return {"recall@20": source["recall@20"], "ndcg@20": source["ndcg@20"]}


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run

    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for split_name, split in SPLITS.items():
                if args.splits and split_name not in args.splits:
                    continue
                common = [
                    f"data.split={split}",
                    f"data.seed={seed}",
                    f"train.seed={seed}",
                    "train.progress=false",
                    *args.overrides,
                ]
                for model, (recipe, extra) in MODELS.items():
                    if args.models and model not in args.models:
                        continue
                    run_dir = Path(tmp) / f"{model}-{split_name}-{seed}".replace(" ", "_")
                    config = load_config(
                        None, [f'run_dir="{run_dir}"', *extra, *common], base=RECIPES[recipe]()
                    )
                    metrics = train_run(config)
                    if split == "new_users":
                        results += new_user_rows(run_dir, model, seed, model == "text GCN")
                        continue
                    results.append(
                        {
                            "model": model,
                            "split": split_name,
                            "seed": seed,
                            **_metrics_of(metrics, split_name),
                        }
                    )
                    if model == "text GCN":
                        popularity = metrics["baselines"]["popularity"]
                        results.append(
                            {
                                "model": "popularity",
                                "split": split_name,
                                "seed": seed,
                                **_metrics_of(popularity, split_name),
                            }
                        )
                if split_name == "warm" and not args.no_ratings:
                    run_dir = Path(tmp) / f"rating-{seed}"
                    config = load_config(
                        None,
                        [f'run_dir="{run_dir}"', "train.objective=mse", *common],
                        base=RECIPES["ml_latest_small_cpu"](),
                    )
                    metrics = train_run(config)
                    for name, values in (
                        ("text GCN rating head", metrics),
                        ("biases μ+b_u+b_i", metrics["baselines"]["biases"]),
                        ("global mean", metrics["baselines"]["global_mean"]),
                    ):
                        results.append(
                            {
                                "model": name,
                                "split": "warm",
                                "seed": seed,
                                "rmse": values["rmse"],
                                "mae": values["mae"],
                            }
                        )
    return summarise(results)


def new_user_rows(run_dir: Path, model: str, seed: int, popularity: bool) -> list[dict]:
    """The held-out users of a ``new_users`` run: folded in from their training-period items,
    placed by the text those items give them (text models: :func:`new_user_texts`), and
    (``popularity``) ranked by training popularity; Recall/NDCG@20 of each, their given items
    excluded."""
    import numpy as np
    import torch

    from gnnrec.serve.handle import load

    handle = load(run_dir)
    try:
        held = held_out_users(handle.graph, handle.split)
        items = handle.z[handle.num_users :]
        placements = {NEW_USERS[0]: handle.embed_new_users(held.item_ids)}
        if handle.config.model.text_features:
            placements[NEW_USERS[1]] = handle.embed_texts(new_user_texts(handle, held))
        rows = [
            {
                "model": model,
                "split": split,
                "seed": seed,
                **ranking_metrics(held, embedding_scores(handle.model, z, items), len(items)),
            }
            for split, z in placements.items()
        ]
        if popularity:
            trained = handle.graph.interactions.item[handle.split.train]
            counts = torch.as_tensor(
                np.bincount(trained, minlength=len(items)), dtype=torch.float32
            )

            def by_popularity(users: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
                return counts.to(candidates.device)[candidates].repeat(len(users), 1)

            metrics = ranking_metrics(held, by_popularity, len(items))
            rows += [
                {"model": "popularity", "split": s, "seed": seed, **metrics} for s in NEW_USERS
            ]
        return rows
    finally:
        handle.close()


def new_user_texts(handle, held: HeldOutUsers) -> list[str]:
    """The text each held-out user is placed by: the template text of their training-period
    items, or, for a run trained on generated profiles (``data.user_text = "profile"``), their
    profile in the run's profiles file (written from those same items)."""
    data = handle.config.data
    if data.user_text == "profile":
        from gnnrec.data.profiles_file import read_profiles

        return read_profiles(data.profiles_path, [handle.graph.users.ids[u] for u in held.users])
    from gnnrec.data.user_text import user_text_for_items

    return [user_text_for_items(handle.graph, rows, data) for rows in held.item_rows]


def summarise(results: list[dict]) -> list[dict]:
    """One row per (model, split): mean and std over seeds of every metric present."""
    rows = []
    meta = provenance()
    order = ["warm", "cold", *NEW_USERS]
    keys = sorted({(r["split"], r["model"]) for r in results}, key=lambda k: (order.index(k[0]), k))
    for split, model in keys:
        runs = [r for r in results if (r["split"], r["model"]) == (split, model)]
        row = {"bench": "quality", "split": split, "model": model, "seeds": len(runs)}
        for metric in ("recall@20", "ndcg@20", "rmse", "mae"):
            values = [r[metric] for r in runs if metric in r]
            if values:
                row[metric] = statistics.mean(values)
                row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append({**row, "runs": runs, **meta})
    return rows


def table(rows: list[dict]) -> str:
    def fmt(row: dict, metric: str) -> str:
        if metric not in row:
            return ""
        return f"{row[metric]:.4f} ± {row[metric + '_std']:.4f}"

    shown = [
        {
            "split": r["split"],
            "model": r["model"],
            "seeds": r["seeds"],
            **{m: fmt(r, m) for m in ("recall@20", "ndcg@20", "rmse", "mae")},
        }
        for r in rows
    ]
    return markdown_table(shown, ["split", "model", "seeds", "recall@20", "ndcg@20", "rmse", "mae"])


def plot(rows: list[dict], path: Path) -> Path:
    """Recall@20 and NDCG@20 (mean and spread over seeds) of every model, a panel per split
    measured, the models sorted best first by Recall@20 in each panel (a model's latest row)."""
    plt = pyplot()
    latest = {(r["split"], r["model"]): r for r in rows if "recall@20" in r}  # last measured
    ranked = list(latest.values())
    splits = [s for s in ("warm", "cold", *NEW_USERS) if any(r["split"] == s for r in ranked)]
    cols = min(len(splits), 2)
    rows_ = -(-len(splits) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(6.5 * cols, 4.4 * rows_), squeeze=False)
    for ax in axes.flat[len(splits) :]:
        ax.set_visible(False)
    for ax, split in zip(axes.flat, splits):
        chosen = sorted((r for r in ranked if r["split"] == split), key=lambda r: -r["recall@20"])
        places = range(len(chosen))
        for offset, metric, color in (
            (-0.2, "recall@20", "tab:blue"),
            (0.2, "ndcg@20", "tab:orange"),
        ):
            ax.bar(
                [p + offset for p in places],
                [r[metric] for r in chosen],
                0.4,
                yerr=[r.get(f"{metric}_std", 0.0) for r in chosen],
                capsize=3,
                color=color,
                label=metric.replace("recall", "Recall").replace("ndcg", "NDCG"),
            )
        ax.set_xticks(list(places), [r["model"] for r in chosen], fontsize=8, rotation=20)
        ax.set(title=f"{split} split (mean ± std over seeds; best first)", ylabel="metric at 20")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench quality", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seeds", type=whole(0), nargs="+", default=[0, 1, 2])
    add_override_argument(parser, "config override for every run")
    parser.add_argument("--no-ratings", action="store_true", help="skip the rating-head runs")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="default: all")
    parser.add_argument("--splits", nargs="+", choices=list(SPLITS), help="default: all")
    add_output_argument(parser, "quality")
    args = parser.parse_args(argv)
    return seeded_report(run(args), args, table, plot)


if __name__ == "__main__":
    main()
