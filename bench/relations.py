"""Relations: what edge weights and extra relations do to ranking quality, several seeds, as
JSON rows, a markdown table and a plot.

- ``weights``: each model on ml-latest-small (random split), unweighted and with each of
  ``--weights`` (``data.edge_weight``: the rating, ``log1p(rating)``).
- ``social``: LightGCN (IDs only) on a synthetic graph with planted friendships (``gnnrec synth
  --friends-per-user``; friends share a community, users have few interactions): the plain
  user–item graph, with the friendships merged into it, and with them as a typed relation
  (``model.relations = "typed"``).
- ``cold``: the same on a synthetic graph with planted item links (linked items share a
  community) and a cold-item split, measured on the held-out items (ranked among them):
  without the links, with them merged, typed.
- ``attributes``: the same with planted item attributes (``gnnrec synth
  --attributes-per-item``: entity nodes, each item linked to 3, mostly of its community) in
  place of the item links.
- ``cost``: a typed model's training step and full-graph forward (time, peak memory) against
  the merged one on a synthetic graph of ``--cost-users`` users (20 interactions each, so
  about ``10^7`` interactions at the default) with two extra relations
  (:mod:`gnnrec.bench.relation_cost`).

Every variant trains with the same seeds and budget (``data.seed``, ``train.seed`` and, for
``social``, the dataset's seed). The verdict of a variant against its experiment's first, per
metric: a **win** when it is better on every seed and the mean gain exceeds the spread over
seeds (the larger of the two standard deviations), a **loss** the same the other way, else a
**tie**.

    gnnrec bench relations [--experiments weights social] [--seeds 0 1 2] [--set ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, provenance, pyplot, save_figure, seeded_report
from gnnrec.common.flags import whole
from gnnrec.config import add_override_argument

# model -> (recipe, overrides) of the weights experiment
MODELS = {
    "LightGCN": ("lightgcn_ml_latest_small", []),
    "text GCN": ("ml_latest_small_cpu", []),
}
METRICS = ("recall@20", "ndcg@20")
UNWEIGHTED = "none"
SOCIAL_MODEL = "LightGCN"
WHERE = {
    "weights": "ml-latest-small",
    "social": "planted friendships",
    "cold": "cold items, planted item links",
    "attributes": "cold items, planted item attributes",
}
LABELS = {
    "merged": "merged graph\n(one weight)",
    "typed": "typed: a call\na relation",
    "typed, segmented": "typed: one\nsegmented call",
}
# cost variant -> (model.relations, model.relation_kernel)
COST_VARIANTS = {
    "merged": ("merged", "per_relation"),
    "typed": ("typed", "per_relation"),
    "typed, segmented": ("typed", "segmented"),
}


def planted_variants(folder: Path, links: str = "friendships") -> dict[str, list[str]]:
    """The graphs of the synthetic dataset in ``folder``: without its planted ``links``
    (``friendships``, ``item_links`` or ``item_attributes``), with them merged, and typed."""
    data = ["data.dataset=synthetic", f'data.path="{folder}"']
    name = links.replace("_", " ")
    return {
        "user-item graph": [*data, f"data.options.{links}=false"],
        f"+ {name}, merged": [*data, f"data.options.{links}=true"],
        f"+ {name}, typed": [*data, f"data.options.{links}=true", "model.relations=typed"],
    }


def experiments(args: argparse.Namespace, tmp: Path, seed: int):
    """``(experiment, model, recipe, {variant: overrides})`` of one seed."""
    from gnnrec.data.synthetic import SyntheticSpec, write_synthetic

    if "weights" in args.experiments:
        for model, (recipe, extra) in MODELS.items():
            if not args.models or model in args.models:
                variants = {
                    w: [f'data.edge_weight="{w}"', *extra] for w in (UNWEIGHTED, *args.weights)
                }
                yield "weights", model, recipe, variants
    cold = ["data.split=cold_items"]
    planted = {
        "social": ("friendships", []),
        "cold": ("item_links", cold),
        "attributes": ("item_attributes", cold),
    }
    for experiment, (links, split) in planted.items():
        if experiment not in args.experiments:
            continue
        spec = SyntheticSpec(
            num_users=args.social_users,
            num_items=max(args.social_users // 4, 8),
            communities=8,
            interactions_per_user=3.0,
            friends_per_user=5 if links == "friendships" else 0,
            links_per_item=5 if links == "item_links" else 0,
            attributes_per_item=3 if links == "item_attributes" else 0,
            seed=seed,
        )
        folder = write_synthetic(spec, tmp / f"{experiment}-{seed}", write_csv=False)
        variants = {v: [*o, *split] for v, o in planted_variants(folder, links).items()}
        yield experiment, SOCIAL_MODEL, "lightgcn_ml_latest_small", variants


def run(args: argparse.Namespace) -> list[dict]:
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run

    results: list[dict] = []
    if "cost" in args.experiments:
        results += cost_rows(args)
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for experiment, model, recipe, variants in experiments(args, Path(tmp), seed):
                for variant, extra in variants.items():
                    run_dir = Path(tmp) / f"{experiment}-{model}-{variant}-{seed}"
                    overrides = [
                        f'run_dir="{run_dir}"',
                        f"data.seed={seed}",
                        f"train.seed={seed}",
                        "train.progress=false",
                        *extra,
                        *args.overrides,
                    ]
                    metrics = train_run(load_config(None, overrides, base=RECIPES[recipe]()))
                    row = {"experiment": experiment, "model": model, "variant": variant}
                    measured = metrics["cold"] if experiment in ("cold", "attributes") else metrics
                    results.append(row | {"seed": seed} | {m: measured[m] for m in METRICS})
    return summarise(results)


def cost_rows(args: argparse.Namespace) -> list[dict]:
    """The cost experiment's rows: merged then typed, on one graph."""
    from gnnrec.bench.relation_cost import cost_graph, measure

    store, pairs, sizes = cost_graph(args.cost_users, args.seeds[0])
    rows, meta = [], provenance()
    for variant, (relations, kernel) in COST_VARIANTS.items():
        measured = measure(
            store, pairs, relations, kernel=kernel, steps=args.cost_steps, seed=args.seeds[0]
        )
        row = {"bench": "relations", "experiment": "cost", "model": "GCN", "variant": variant}
        rows.append(row | sizes | measured | meta)
    return rows


def verdict(variant: list[float], baseline: list[float]) -> str:
    """``win``, ``loss`` or ``tie`` of paired per-seed values (see the module docstring)."""
    gains = [v - b for v, b in zip(variant, baseline)]
    spread = max(
        statistics.stdev(variant) if len(variant) > 1 else 0.0,
        statistics.stdev(baseline) if len(baseline) > 1 else 0.0,
    )
    mean = statistics.mean(gains)
    if all(g > 0 for g in gains) and mean > spread:
        return "win"
    if all(g < 0 for g in gains) and -mean > spread:
        return "loss"
    return "tie"


def summarise(results: list[dict]) -> list[dict]:
    """One row per (experiment, model, variant): mean and std over seeds, and for every
    variant but the experiment's first its verdict against it on the same seeds."""
    rows = [r for r in results if r["experiment"] == "cost"]
    results = [r for r in results if r["experiment"] != "cost"]
    meta = provenance()
    groups = dict.fromkeys((r["experiment"], r["model"]) for r in results)
    for experiment, model in groups:
        mine = [r for r in results if (r["experiment"], r["model"]) == (experiment, model)]
        runs = {
            v: sorted((r for r in mine if r["variant"] == v), key=lambda r: r["seed"])
            for v in dict.fromkeys(r["variant"] for r in mine)
        }
        baseline = next(iter(runs))
        for variant, own in runs.items():
            row = {"bench": "relations", "experiment": experiment, "model": model}
            row |= {"variant": variant, "seeds": len(own)}
            for metric in METRICS:
                values = [r[metric] for r in own]
                row[metric] = statistics.mean(values)
                row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
                if variant != baseline:
                    row[f"{metric}_verdict"] = verdict(values, [r[metric] for r in runs[baseline]])
            rows.append({**row, "runs": own, **meta})
    return rows


def table(rows: list[dict]) -> str:
    cost = [r for r in rows if r["experiment"] == "cost"]
    rows = [r for r in rows if r["experiment"] != "cost"]
    parts = [quality_table(rows)] if rows else []
    if cost:
        columns = ["model", "relations", "interactions", "directed_edges", "step_s", "step_peak_mb"]
        columns += ["forward_s", "forward_peak_mb", "layer_parameters"]
        shown = [{**r, "relations": r["variant"]} for r in cost]
        parts.append(markdown_table(shown, columns))
    return "\n\n".join(parts)


def quality_table(rows: list[dict]) -> str:
    shown = [
        {
            "experiment": r["experiment"],
            "model": r["model"],
            "graph": r["variant"]
            if r["experiment"] != "weights"
            else f"edge_weight = {r['variant']}",
            "seeds": r["seeds"],
            **{
                m: f"{r[m]:.4f} ± {r[m + '_std']:.4f}"
                + (f" ({r[m + '_verdict']})" if m + "_verdict" in r else "")
                for m in METRICS
            },
        }
        for r in rows
    ]
    return markdown_table(shown, ["experiment", "model", "graph", "seeds", *METRICS])


def plot(rows: list[dict], path: Path) -> Path:
    """Recall@20 and NDCG@20 (mean ± std over seeds) of every variant, one row of panels per
    experiment, each variant's verdict written over its bar."""
    plt = pyplot()
    cost = [r for r in rows if r["experiment"] == "cost"]
    rows = [r for r in rows if r["experiment"] != "cost"]
    shown = list(dict.fromkeys(r["experiment"] for r in rows)) + (["cost"] if cost else [])
    fig, axes = plt.subplots(
        len(shown), len(METRICS), figsize=(6 * len(METRICS), 4.2 * len(shown)), squeeze=False
    )
    for panels, experiment in zip(axes, shown):
        if experiment == "cost":
            plot_cost(cost, panels)
            continue
        mine = [r for r in rows if r["experiment"] == experiment]
        groups = list(dict.fromkeys(r["model"] for r in mine))
        variants = list(dict.fromkeys(r["variant"] for r in mine))
        width = 0.8 / len(variants)
        for ax, metric in zip(panels, METRICS):
            for k, variant in enumerate(variants):
                chosen = [
                    next((r for r in mine if (r["model"], r["variant"]) == (m, variant)), None)
                    for m in groups
                ]
                places = [p + (k - (len(variants) - 1) / 2) * width for p in range(len(groups))]
                values = [r[metric] if r else 0.0 for r in chosen]
                label = f"edge_weight = {variant}" if experiment == "weights" else variant
                ax.bar(
                    places,
                    values,
                    width,
                    yerr=[r[f"{metric}_std"] if r else 0.0 for r in chosen],
                    capsize=3,
                    label=label,
                )
                for x, value, r in zip(places, values, chosen):
                    if r and f"{metric}_verdict" in r:  # above the error bar
                        top = value + r[f"{metric}_std"] + 0.01 * ax.get_ylim()[1]
                        ax.text(
                            x, top, r[f"{metric}_verdict"], ha="center", va="bottom", fontsize=8
                        )
            ax.set_xticks(range(len(groups)), groups)
            name = metric.replace("recall", "Recall").replace("ndcg", "NDCG")
            where = WHERE[experiment]
            ax.set(title=f"{name}, {where}\n(mean ± std over seeds)", ylabel=name)
            ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_cost(rows: list[dict], panels) -> None:
    """Step and forward time of the merged and the typed model, the peak memory on each bar."""
    names = [r["variant"] for r in rows]
    for ax, (what, seconds, peak) in zip(
        panels,
        (
            ("training step", "step_s", "step_peak_mb"),
            ("full-graph forward", "forward_s", "forward_peak_mb"),
        ),
    ):
        values = [r[seconds] for r in rows]
        colors = ["tab:gray", "tab:purple", "tab:olive"][: len(rows)]
        ax.bar(range(len(rows)), values, 0.6, color=colors)
        for x, (value, r) in enumerate(zip(values, rows)):
            ax.text(
                x, value * 1.01, f"{value:.2f} s, peak +{r[peak]:.0f} MB", ha="center", fontsize=8
            )
        ax.set_xticks(range(len(rows)), [LABELS[n] for n in names])
        r = rows[0]
        ax.set(
            title=f"{what}: {r['interactions']:,} interactions + 2 relations\n{r['device']}",
            ylabel="seconds (median)" if seconds == "step_s" else "seconds",
        )


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench relations", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--experiments",
        nargs="+",
        choices=["weights", "social", "cold", "attributes", "cost"],
        default=["weights", "social", "cold", "attributes", "cost"],
    )
    parser.add_argument("--seeds", type=whole(0), nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--weights", nargs="+", default=["rating"], help="data.edge_weight values to compare"
    )
    parser.add_argument("--models", nargs="+", choices=list(MODELS), help="default: all")
    parser.add_argument(
        "--social-users", type=whole(8), default=4000, help="users of the planted graphs"
    )
    parser.add_argument(
        "--cost-users", type=whole(16), default=580_000, help="users of the cost graph"
    )
    parser.add_argument("--cost-steps", type=whole(1), default=5, help="timed steps a model")
    add_override_argument(parser, "config override for every run")
    add_output_argument(parser, "relations")
    args = parser.parse_args(argv)
    return seeded_report(run(args), args, table, plot)


if __name__ == "__main__":
    main()
