"""Incremental updates against a full retrain, on a temporal split of ml-latest-small.

The interactions are cut by global time: the first ``--base`` fraction (90%) trains a run, the
next ``--delta`` (5%) arrives afterwards, the rest (5%) is the test. ``update``: ``gnnrec
update`` of the base run with the delta (the whole command: reading, preparing, training,
writing the version, timed). ``retrain``: the same model trained from scratch on the base and the
delta together (the base run's configuration with the delta appended to its training set, as the
update's version has it: the same nodes, the same training pairs). ``fold_in``: the base run
in memory with the delta recorded user by user (no training). Each ranks every item for the
test users the update knows (their training items excluded); Recall@20 and NDCG@20 over the
test period's pairs of those users and items (about 20 users on ml-latest-small: the last 5%
of its time is a few heavy raters). ``own_split_*``: NDCG@20 on the base run's own random test
split, before and after (what the update did to the older users).

    gnnrec bench updates [--models LightGCN "text GCN"] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, pyplot, report, save_figure
from gnnrec.common.flags import real, whole
from gnnrec.common.typed_fields import choices_of
from gnnrec.config import add_override_argument
from gnnrec.update_config import UpdateConfig

MODELS = {  # name -> recipe
    "LightGCN": "lightgcn_ml_latest_small",
    "text GCN": "ml_latest_small_cpu",
}
K = 20


def temporal_tables(folder: Path, base: float, delta: float) -> dict:
    """Writes ml-latest-small cut by time into ``folder``: ``base.csv``, ``delta.csv`` (user_id,
    item_id, rating, timestamp), ``test.csv`` and ``items.csv`` (item_id and the item text);
    returns the cut times and counts."""
    import csv

    from gnnrec.data import DataConfig, load_dataset

    graph, _ = load_dataset(DataConfig())
    inter = graph.interactions
    order = np.argsort(inter.timestamp, kind="stable")
    cuts = [round(base * len(order)), round((base + delta) * len(order))]
    parts = dict(zip(("base", "delta", "test"), np.split(order, cuts)))
    users, items = graph.users.ids, graph.items.ids
    for name, rows in parts.items():
        with open(folder / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user_id", "item_id", "rating", "timestamp"])
            for r in rows:
                writer.writerow(
                    [
                        users[inter.user[r]],
                        items[inter.item[r]],
                        inter.rating[r],
                        inter.timestamp[r],
                    ]
                )
    fields = list(graph.items.text_fields)
    with open(folder / "items.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["item_id", *fields])
        for i, item in enumerate(items):
            writer.writerow([item, *(graph.items.text_fields[k][i] for k in fields)])
    return {
        "fields": fields,
        **{f"{name}_interactions": len(rows) for name, rows in parts.items()},
        "delta_from": int(inter.timestamp[parts["delta"][0]]),
        "test_from": int(inter.timestamp[parts["test"][0]]),
    }


def _config(recipe: str, folder: Path, run_dir: Path, fields: list[str], seed: int, extra):
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES

    overrides = [
        f'run_dir="{run_dir}"',
        "data.dataset=table",
        f'data.path="{folder / "base.csv"}"',
        f'data.options.items_path="{folder / "items.csv"}"',
        'data.options.rating_column="rating"',
        'data.options.timestamp_column="timestamp"',
        f"data.options.item_text_columns={fields}".replace("'", '"'),
        f"data.seed={seed}",
        f"train.seed={seed}",
        "train.progress=false",
    ]
    return load_config(None, [*overrides, *extra], base=RECIPES[recipe]())


def _read(path: Path) -> list[tuple[str, str]]:
    import csv

    with open(path) as f:
        return [(r["user_id"], r["item_id"]) for r in csv.DictReader(f)]


def _test_metrics(handle, test: dict[str, set[str]]) -> dict:
    """Recall/NDCG@20 of ``handle``'s top 20 (seen items excluded) against each user's ``test``
    items, averaged over the users (binary relevance, as :mod:`gnnrec.train.metrics`)."""
    ranked = handle.recommend(list(test), k=K)
    recall, ndcg = [], []
    for user, items in test.items():
        hits = [item in items for item, _ in ranked[user]]
        recall.append(sum(hits) / len(items))
        dcg = sum(1 / np.log2(r + 2) for r, hit in enumerate(hits) if hit)
        ndcg.append(dcg / sum(1 / np.log2(r + 2) for r in range(min(K, len(items)))))
    return {"recall@20": float(np.mean(recall)), "ndcg@20": float(np.mean(ndcg))}


def _folded_base(base_dir: Path, delta: Path):
    """The base run in memory with the delta's interactions recorded (fold-in, no training)."""
    from gnnrec.serve.handle import load

    handle = load(base_dir)
    by_user: dict[str, list[str]] = {}
    for user, item in _read(delta):
        by_user.setdefault(user, []).append(item)
    for user, items in by_user.items():
        handle.record(user, items)
    return handle


def update_rows(name: str, args, folder: Path, tables: dict, seed: int) -> list[dict]:
    """One model and seed: base run, update of it, and the retrain from scratch."""
    import dataclasses

    from gnnrec.data.updates import Update, read_interactions
    from gnnrec.run import train_run
    from gnnrec.serve.handle import load
    from gnnrec.update import update_run

    recipe, fields = MODELS[name], tables["fields"]
    tag = f"{name}-{seed}".replace(" ", "_")
    base_dir, full_dir = folder / f"base-{tag}", folder / f"retrain-{tag}"
    config = _config(recipe, folder, base_dir, fields, seed, args.overrides)
    start = time.time()
    train_run(config)
    base_s = time.time() - start
    folded = _folded_base(base_dir, folder / "delta.csv")  # before the update is current
    settings = UpdateConfig(
        strategy=args.strategy,
        epochs=args.update_epochs,
        replay=args.replay,
        lr_scale=args.lr_scale,
        validate=args.validate,
    )
    start = time.time()
    metrics = update_run(base_dir, folder / "delta.csv", settings)
    update_s = time.time() - start
    delta = folder / f"delta-{tag}"
    Update(read_interactions(folder / "delta.csv")).write(delta)
    full = dataclasses.replace(
        config,
        run_dir=str(full_dir),
        data=dataclasses.replace(config.data, updates=[str(delta)]),
    )
    start = time.time()
    train_run(full)
    retrain_s = time.time() - start
    row = {
        "bench": "updates",
        "model": name,
        "seed": seed,
        **{k: v for k, v in tables.items() if k != "fields"},
        "added": metrics["update"]["added"],
        "new_users": metrics["update"]["new_users"],
        "strategy": settings.chosen(config.model.text_features),
        "update_epochs": settings.epoch_count(config.model.text_features),
        "replay": args.replay,
        "lr_scale": settings.step_scale(config.model.text_features),
        "base_s": base_s,
        "update_s": update_s,
        "retrain_s": retrain_s,
    }
    handles = {"fold_in": folded, "update": load(base_dir), "retrain": load(full_dir)}
    known = set(handles["update"].user_ids)
    items = set(handles["update"].item_ids)
    test: dict[str, set[str]] = {}
    for user, item in _read(folder / "test.csv"):
        if user in known and item in items:
            test.setdefault(user, set()).add(item)
    # the run's own (random, pre-update) test split: what the update did to the older users
    row["own_split_ndcg@20_base"] = json.loads((base_dir / "metrics.json").read_text())["ndcg@20"]
    row["own_split_ndcg@20_update"] = metrics["ndcg@20"]
    row["own_split_ndcg@20_retrain"] = json.loads((full_dir / "metrics.json").read_text())[
        "ndcg@20"
    ]
    row["test_users"] = len(test)
    row["test_pairs"] = sum(len(v) for v in test.values())
    for label, handle in handles.items():
        for metric, value in _test_metrics(handle, test).items():
            row[f"{metric}_{label}"] = value
        handle.close()
    row["ndcg@20_ratio"] = row["ndcg@20_update"] / row["ndcg@20_retrain"]
    row["recall@20_ratio"] = row["recall@20_update"] / row["recall@20_retrain"]
    row["time_ratio"] = update_s / retrain_s
    print(
        f"{name} seed {seed}: NDCG@20 fold-in {row['ndcg@20_fold_in']:.4f} update "
        f"{row['ndcg@20_update']:.4f} retrain {row['ndcg@20_retrain']:.4f}; "
        f"{update_s:.1f} s against {retrain_s:.1f} s",
        flush=True,
    )
    return [row]


def summary(rows: list[dict]) -> list[dict]:
    """Per model: means over seeds, ratios of the means."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        row = {"bench": "updates", "part": "summary", "model": model, "seeds": len(mine)}
        for key in mine[0]:
            if key.startswith(("recall@", "ndcg@", "own_split", "base_s", "update_s", "retrain_s")):
                row[key] = statistics.mean(r[key] for r in mine)
        row["ndcg@20_ratio"] = row["ndcg@20_update"] / row["ndcg@20_retrain"]
        row["recall@20_ratio"] = row["recall@20_update"] / row["recall@20_retrain"]
        row["time_ratio"] = row["update_s"] / row["retrain_s"]
        out.append(row)
    return out


def table(rows: list[dict]) -> str:
    return markdown_table(
        [
            {
                "model": r["model"],
                "seeds": r["seeds"],
                "NDCG@20 retrain": f"{r['ndcg@20_retrain']:.4f}",
                "update": f"{r['ndcg@20_update']:.4f}",
                "ratio": f"{r['ndcg@20_ratio']:.3f}",
                "fold-in only": f"{r['ndcg@20_fold_in']:.4f}",
                "Recall@20 retrain": f"{r['recall@20_retrain']:.4f}",
                "update ": f"{r['recall@20_update']:.4f}",
                "own split NDCG before/after": f"{r['own_split_ndcg@20_base']:.4f} / "
                f"{r['own_split_ndcg@20_update']:.4f}",
                "retrain s": f"{r['retrain_s']:.1f}",
                "update s": f"{r['update_s']:.1f}",
                "time ratio": f"{r['time_ratio']:.3f}",
            }
            for r in rows
            if r.get("part") == "summary"
        ],
        [
            "model",
            "seeds",
            "NDCG@20 retrain",
            "update",
            "ratio",
            "fold-in only",
            "Recall@20 retrain",
            "update ",
            "own split NDCG before/after",
            "retrain s",
            "update s",
            "time ratio",
        ],
    )


def _strategies(rows: list[dict], model: str) -> set[str]:
    """The update strategies ``model``'s rows used (rows written before there was a choice
    have none)."""
    return {r["strategy"] for r in rows if r["model"] == model and "strategy" in r}


def plot(rows: list[dict], path: Path) -> Path:
    """NDCG@20 (left: retrain, fold-in only, update) and seconds (right: retrain, update), per
    model and seed."""
    plt = pyplot()
    runs = [r for r in rows if r.get("part") != "summary"]
    models = list(dict.fromkeys(r["model"] for r in runs))
    fig, (quality, seconds) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(len(models))
    bars = (
        ("retrain", "tab:gray", True),
        ("fold_in", "tab:orange", False),
        ("update", "tab:blue", True),
    )
    width = 0.26
    for b, (label, colour, timed) in enumerate(bars):
        offset = (b - 1) * width
        for m, model in enumerate(models):
            mine = [r for r in runs if r["model"] == model]
            kwargs = (
                {"label": label.replace("_", "-") + (" only" if not timed else "")}
                if m == 0
                else {}
            )
            ndcg = [r[f"ndcg@20_{label}"] for r in mine]
            quality.bar(x[m] + offset, np.mean(ndcg), width, color=colour, **kwargs)
            quality.scatter([x[m] + offset] * len(ndcg), ndcg, color="black", s=10, zorder=3)
            if timed:
                secs = [r[f"{label}_s"] for r in mine]
                seconds.bar(x[m] + offset, np.mean(secs), width, color=colour, **kwargs)
                seconds.scatter([x[m] + offset] * len(secs), secs, color="black", s=10, zorder=3)
    labels = [
        " ".join([model, *(f"({s} update)" for s in sorted(_strategies(runs, model)))])
        for model in models
    ]
    quality.set(xticks=x, xticklabels=labels, ylabel="NDCG@20 on the last 5% of time")
    quality.set_title("quality: update vs full retrain (bars: mean; dots: seeds)")
    seconds.set(xticks=x, xticklabels=labels, ylabel="seconds (whole command)")
    seconds.set_title(f"time, {runs[0]['device']}")
    quality.legend()
    seconds.legend()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench updates", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", type=whole(0), nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--base", type=real(high=1.0), default=0.9, help="fraction of time in the base run"
    )
    parser.add_argument("--delta", type=real(high=1.0), default=0.05, help="fraction in the update")
    parser.add_argument(
        "--strategy", choices=choices_of(UpdateConfig)["strategy"], default=UpdateConfig.strategy
    )
    parser.add_argument("--update-epochs", type=whole(), help="default: the strategy's")
    parser.add_argument("--replay", type=real(low_open=False), default=UpdateConfig.replay)
    parser.add_argument("--lr-scale", type=real(), help="default: the update's, per model")
    parser.add_argument("--validate", action="store_true")
    add_override_argument(parser, "config override for every run")
    add_output_argument(parser, "updates")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gnnrec-updates-") as tmp:
        folder = Path(tmp)
        tables = temporal_tables(folder, args.base, args.delta)
        for name in args.models:
            for seed in args.seeds:
                rows += update_rows(name, args, folder, tables, seed)
    rows += summary(rows)
    return report(rows, args.output, plot, table)


if __name__ == "__main__":
    main()
