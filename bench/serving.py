"""Serving: how good fold-in is, and how fast the service answers.

``fold_in``: on the ``new_users`` split (10% of the users with test items held out of training
entirely), each held-out user is folded into the trained model from their training-period
interactions; their Recall@20 / NDCG@20 are compared with what the same users get from the same
model trained with them in (split ``random``, same seed: the same test items). For ID models
the embeddings of a full recomputation (the held-out users' edges added both ways, the model's
weights kept) are measured too: the gap fold-in leaves by holding the rest of the graph fixed.

``latency``: a run with ``--items`` items (64-d LightGCN on a synthetic log), served by
``gnnrec serve``'s deployment on this machine's Ray Serve with an item index; a bounded loopback
load test at each concurrency (known-user top-20, fold-in top-20 from 10 items), and the same
load on an empty endpoint of the same engine (its own ceiling). ANN recall@20 against exact
top-K is measured on the same users.

    gnnrec bench serving [--part fold_in latency] [--items 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, pyplot, report, save_figure
from gnnrec.bench.held_out_users import K, embedding_scores, held_out_users, ranking_metrics
from gnnrec.common.flags import real, whole
from gnnrec.config import add_override_argument

FOLD_IN_MODELS = {  # name -> (recipe, overrides)
    "LightGCN": ("lightgcn_ml_latest_small", []),
    "text GCN": ("ml_latest_small_cpu", []),
}


# ---- fold-in quality ----------------------------------------------------------------------------


def fold_in_rows(
    name: str, recipe: str, extra: list[str], args, folder: Path, seed: int
) -> list[dict]:
    """One dataset, model and seed: trained in, folded in (and for ID models, recomputed)."""
    import torch

    from gnnrec.config import load_config
    from gnnrec.data.graph_store import GraphStore
    from gnnrec.models.graph_view import GraphView
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run
    from gnnrec.serve.handle import load

    handles, seconds = {}, {}
    for split in ("random", "new_users"):
        run_dir = folder / f"{name}-{split}-{seed}".replace(" ", "_")
        overrides = [f'run_dir="{run_dir}"', f"data.split={split}", "train.progress=false"]
        overrides += [f"data.seed={seed}", f"train.seed={seed}"]
        config = load_config(None, [*overrides, *extra, *args.overrides], base=RECIPES[recipe]())
        start = time.time()
        train_run(config)
        seconds[split] = time.time() - start
        handles[split] = load(run_dir, fold_in_steps=args.fold_in_steps)
    trained, held = handles["random"], handles["new_users"]
    graph, U = held.graph, held.num_users
    users = held_out_users(graph, held.split)
    new = users.users
    start = time.time()
    z_folded = held.embed_new_users(users.item_ids)
    fold_ms = 1000 * (time.time() - start) / len(new)
    items = held.z[U:]
    row = {
        "bench": "serving",
        "part": "fold_in",
        "dataset": graph.name,
        "model": name,
        "seed": seed,
        "users": U,
        "new_users": len(new),
        "fold_in_ms_per_user": fold_ms,
        "fold_in_steps": held.fold_in_steps,
        "train_s_trained_in": seconds["random"],
        "train_s_held_out": seconds["new_users"],
    }
    for label, model, z_u, z_i in (
        ("trained_in", trained.model, trained.z[torch.as_tensor(new)], trained.z[U:]),
        ("folded_in", held.model, z_folded, items),
    ):
        scores = embedding_scores(model, z_u, z_i)
        for metric, value in ranking_metrics(users, scores, held.num_items).items():
            row[f"{metric}_{label}"] = value
    if not held.config.model.text_features and held.model.propagates:
        data = held._data  # the held-out run's graph with the new users' edges added both ways
        train_users, train_items = (np.asarray(a) for a in data.train[:2])
        fold_in = held.split.fold_in
        fold_users, fold_items = graph.interactions.user[fold_in], graph.interactions.item[fold_in]
        grown = GraphStore.bipartite(
            np.concatenate([train_users, fold_users]),
            np.concatenate([train_items, fold_items]),
            U,
            held.num_items,
        )
        mask = data.graph.csr.degree() > 0  # the new users still have no ID row
        with torch.no_grad():
            z_full = held.model(
                torch.arange(U + held.num_items), None, GraphView.of(grown.csr), mask
            )
        z_recomputed = z_full[torch.as_tensor(new)]
        gap = (z_folded - z_recomputed).norm(dim=1) / z_recomputed.norm(dim=1).clamp_min(1e-12)
        row["relative_gap_to_recomputed"] = float(gap.mean())
        placed = items.norm(dim=1) > 0  # items without training edges stay at 0 either way
        moved = (z_full[U:] - items).norm(dim=1)[placed] / items.norm(dim=1)[placed]
        row["items_moved_by_recomputation"] = float(moved.mean())
        scores = embedding_scores(held.model, z_recomputed, z_full[U:])
        for metric, value in ranking_metrics(users, scores, held.num_items).items():
            row[f"{metric}_recomputed"] = value
    for metric in ("recall@20", "ndcg@20"):
        row[f"{metric}_ratio"] = row[f"{metric}_folded_in"] / row[f"{metric}_trained_in"]
    for handle in handles.values():
        handle.close()
    return [row]


def fold_in_summary(rows: list[dict]) -> list[dict]:
    """Per model: the metrics averaged over seeds (users pooled by seed), ratios of the means."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        row = {"bench": "serving", "part": "fold_in_summary", "model": model}
        row |= {"dataset": mine[0]["dataset"], "seeds": [r["seed"] for r in mine]}
        row["new_users"] = sum(r["new_users"] for r in mine)
        for key in mine[0]:
            if key.startswith(("recall@", "ndcg@", "relative_gap", "items_moved", "fold_in_ms")):
                row[key] = statistics.mean(r[key] for r in mine)
        for metric in ("recall@20", "ndcg@20"):
            row[f"{metric}_ratio"] = row[f"{metric}_folded_in"] / row[f"{metric}_trained_in"]
        row["fold_in_steps"] = mine[0]["fold_in_steps"]
        out.append(row)
    return out


# ---- latency ------------------------------------------------------------------------------------


def synthetic_run(folder: Path, users: int, items: int, steps: int, name: str) -> Path:
    """A 64-d LightGCN on a synthetic log (``users`` x 10 interactions over ``items`` items),
    trained briefly (serving cost does not depend on how long it trained)."""
    from gnnrec.config import load_config
    from gnnrec.run import train_run

    data = folder / f"{name}-data"
    subprocess.run(
        [sys.executable, "-m", "gnnrec", "synth", "--output", str(data), "--parquet"]
        + ["--users", str(users), "--items", str(items)]
        + ["--interactions-per-user", "10", "--overwrite"],
        check=True,
    )
    run_dir = folder / name
    overrides = [
        f'run_dir="{run_dir}"',
        "data.dataset=table",
        f'data.path="{data / "table"}"',
        'data.options.rating_column="rating"',
        'data.options.timestamp_column="ts"',
        f'data.options.items_path="{data / "items.csv"}"',  # every item a node, rated or not
        'data.options.item_text_columns=["title"]',
        "model.name=lightgcn",
        "model.text_features=false",
        "model.hidden=64",
        "model.layers=2",
        "model.id_dropout=0.0",
        "train.mode=sampled",
        "train.fanouts=[10, 5]",
        "train.id_optimizer=rowwise_adagrad",
        "train.epochs=1",
        f"train.steps_per_epoch={steps}",
        "train.batch_size=4096",
        "train.valid_users=500",
        "train.progress=false",
        "eval.test_users=500",
        "eval.recommend_users=100",
    ]
    train_run(load_config(None, overrides))
    return run_dir


def batch_rows(args, folder: Path) -> list[dict]:
    """Every user's top 20 of one run: one process (``write_recommendations``) and Ray Data
    with ``args.workers`` workers, timed in the same run after the embeddings are computed."""
    from gnnrec.outputs import embeddings, write_recommendations
    from gnnrec.run import load_run
    from gnnrec.serve.batch_recommend import recommend_on_ray

    run_dir = synthetic_run(folder, args.batch_users, args.batch_items, args.steps, "batch-run")
    config, prepared, model = load_run(run_dir, ["eval.recommend_users=0", f"eval.top_k={K}"])
    start = time.time()
    z = embeddings(prepared, model, config)
    embed_s = time.time() - start
    common = {
        "bench": "serving",
        "part": "batch",
        "users": prepared.data.num_users,
        "items": prepared.data.num_items,
        "interactions": len(prepared.graph.interactions),
        "embeddings_s": embed_s,
    }
    rows = []
    start = time.time()
    write_recommendations(prepared, model, config, folder / "one.parquet", z)
    rows.append({**common, "path": "one process", "workers": 1, "seconds": time.time() - start})
    start = time.time()
    recommend_on_ray(prepared, model, config, folder / "ray", args.workers, z)
    rows.append(
        {**common, "path": "Ray Data", "workers": args.workers, "seconds": time.time() - start}
    )
    for row in rows:
        row["users_per_s"] = row["users"] / row["seconds"]
    return rows


async def _load(url: str, bodies: list[dict], concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients posting ``bodies`` in turn for ``seconds``: latencies and rate."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(n: int, session) -> None:
        nonlocal errors
        i = n
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            async with session.post(url, json=bodies[i % len(bodies)]) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - start)
            i += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(n, session) for n in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": len(latencies) / elapsed,
        **{f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 90, 99)},
    }


def latency_rows(args, folder: Path) -> list[dict]:
    import torch
    from fastapi import FastAPI
    from ray import serve

    from gnnrec.common.ray_cluster import connect
    from gnnrec.serve.handle import load
    from gnnrec.serve.item_index import IndexConfig
    from gnnrec.serve.service import service_app

    run_dir = synthetic_run(folder, args.users, args.items, args.steps, "latency-run")
    index = IndexConfig(kind=args.index, ef_construction=args.ef_construction)
    exact = load(run_dir)
    rng = np.random.default_rng(0)
    chosen = rng.choice(exact.num_users, min(2000, exact.num_users), replace=False)
    users = [exact.user_ids[int(u)] for u in chosen]
    start = time.time()
    approximate = load(run_dir, index=index)
    build_s = time.time() - start
    expected, found = exact.recommend(users[:500], K), approximate.recommend(users[:500], K)
    recall = statistics.mean(
        len({i for i, _ in found[u]} & {i for i, _ in expected[u]}) / K for u in users[:500]
    )
    histories = [exact.seen_items(u)[:10] for u in users]
    common = {
        "bench": "serving",
        "part": "latency",
        "items": exact.num_items,
        "users": exact.num_users,
        "dim": int(exact.z.shape[1]),
        "index": json.dumps(
            {
                "kind": index.kind,
                "m": index.m,
                "ef_construction": index.ef_construction,
                "ef_search": index.ef_search,
                "lists": index.lists,
                "nprobe": index.nprobe,
            }
        ),
        "index_build_s": build_s,
        "ann_recall@20": recall,
        "torch_threads": torch.get_num_threads(),
    }
    del exact, approximate

    ceiling = FastAPI()

    @serve.deployment(max_ongoing_requests=128)
    @serve.ingress(ceiling)
    class Empty:
        @ceiling.post("/")
        def empty(self, body: dict) -> dict:
            return {}

    connect("")
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(service_app(run_dir, 1, None, index), name="gnnrec", route_prefix="/")
    serve.run(Empty.bind(), name="ceiling", route_prefix="/empty")
    base = f"http://127.0.0.1:{args.port}"
    loads = {
        "known user top-20": ("/recommend", [{"user": u, "k": K} for u in users]),
        "fold-in top-20 (10 items)": (
            "/recommend/items",
            [{"items": h, "k": K} for h in histories if h],
        ),
        "empty endpoint (engine ceiling)": ("/empty/", [{"user": u} for u in users]),
    }
    rows = []
    try:
        for what, (path, bodies) in loads.items():
            asyncio.run(_load(base + path, bodies, 4, 2.0))  # warm up
            for concurrency in args.concurrency:
                measured = asyncio.run(_load(base + path, bodies, concurrency, args.seconds))
                rows.append({**common, "load": what, "concurrency": concurrency, **measured})
                print(rows[-1]["load"], concurrency, {k: round(v, 2) for k, v in measured.items()})
    finally:
        serve.shutdown()
    return rows


# ---- output -------------------------------------------------------------------------------------


def table(rows: list[dict]) -> str:
    parts = []
    fold = [r for r in rows if r["part"] == "fold_in_summary"]
    if fold:
        parts.append(
            markdown_table(
                [
                    {
                        "model": r["model"],
                        "new users": r["new_users"],
                        "Recall@20 trained in": f"{r['recall@20_trained_in']:.4f}",
                        "folded in": f"{r['recall@20_folded_in']:.4f}",
                        "ratio": f"{r['recall@20_ratio']:.2f}",
                        "NDCG@20 trained in": f"{r['ndcg@20_trained_in']:.4f}",
                        "folded in ": f"{r['ndcg@20_folded_in']:.4f}",
                        "ratio ": f"{r['ndcg@20_ratio']:.2f}",
                        "recomputed R@20": f"{r['recall@20_recomputed']:.4f}"
                        if "recall@20_recomputed" in r
                        else "",
                        "gap": f"{r['relative_gap_to_recomputed']:.3f}"
                        if "relative_gap_to_recomputed" in r
                        else "",
                        "ms/user": f"{r['fold_in_ms_per_user']:.2f}",
                    }
                    for r in fold
                ],
                [
                    "model",
                    "new users",
                    "Recall@20 trained in",
                    "folded in",
                    "ratio",
                    "NDCG@20 trained in",
                    "folded in ",
                    "ratio ",
                    "recomputed R@20",
                    "gap",
                    "ms/user",
                ],
            )
        )
    lat = [r for r in rows if r["part"] == "latency"]
    if lat:
        parts.append(
            markdown_table(
                [
                    {
                        "load": r["load"],
                        "concurrency": r["concurrency"],
                        "requests/s": f"{r['requests_per_s']:.0f}",
                        "p50 ms": f"{r['p50_ms']:.1f}",
                        "p90 ms": f"{r['p90_ms']:.1f}",
                        "p99 ms": f"{r['p99_ms']:.1f}",
                        "errors": r["errors"],
                    }
                    for r in lat
                ],
                ["load", "concurrency", "requests/s", "p50 ms", "p90 ms", "p99 ms", "errors"],
            )
        )
    batch = [r for r in rows if r["part"] == "batch"]
    if batch:
        parts.append(
            markdown_table(
                [
                    {
                        "path": r["path"],
                        "workers": r["workers"],
                        "users": f"{r['users']:,}",
                        "items": f"{r['items']:,}",
                        "seconds": f"{r['seconds']:.1f}",
                        "users/s": f"{r['users_per_s']:,.0f}",
                    }
                    for r in batch
                ],
                ["path", "workers", "users", "items", "seconds", "users/s"],
            )
        )
    return "\n\n".join(parts)


def _plot_fold_in(ax, fold: list[dict]) -> None:
    """Fold-in against trained-in Recall/NDCG@20, a group of bars per model."""
    for offset, (key, color) in enumerate(
        (
            ("recall@20_trained_in", "tab:blue"),
            ("recall@20_folded_in", "tab:cyan"),
            ("ndcg@20_trained_in", "tab:orange"),
            ("ndcg@20_folded_in", "tab:red"),
        )
    ):
        ax.bar(
            [i + 0.2 * offset - 0.3 for i in range(len(fold))],
            [r[key] for r in fold],
            0.2,
            color=color,
            label=key.replace("_", " "),
        )
    ax.set_xticks(range(len(fold)), [r["model"] for r in fold])
    ax.set(
        title=f"fold-in vs trained in ({fold[0]['new_users']} held-out users)",
        ylabel="metric at 20",
    )
    ax.legend(fontsize=7)


def _plot_latency(ax, lat: list[dict]) -> None:
    """p99 latency (solid) and requests/s (dashed) by concurrency, a colour per load."""
    twin = ax.twinx()
    for load, color in zip(
        dict.fromkeys(r["load"] for r in lat), ("tab:blue", "tab:green", "tab:gray")
    ):
        mine = [r for r in lat if r["load"] == load]
        clients = [r["concurrency"] for r in mine]
        ax.plot(clients, [r["p99_ms"] for r in mine], "o-", color=color, label=f"{load}: p99")
        twin.plot(clients, [r["requests_per_s"] for r in mine], "s--", color=color, alpha=0.6)
    ax.set(
        xscale="log",
        xlabel="concurrent clients",
        ylabel="p99 latency, ms (solid)",
        title=f"service on {lat[0]['items']:,} items",
    )
    twin.set_ylabel("requests/s (dashed)")
    ax.legend(fontsize=7, loc="upper left")


def _plot_batch(ax, batch: list[dict]) -> None:
    """Seconds for every user's top 20, a bar per path."""
    ax.bar(
        [f"{r['path']}\n({r['workers']} worker{'s' * (r['workers'] > 1)})" for r in batch],
        [r["seconds"] for r in batch],
    )
    first = batch[0]
    ax.set(
        ylabel="seconds",
        title=f"top-20 for every user ({first['users']:,} users, {first['items']:,} items)",
    )


def plot(rows: list[dict], path: Path) -> Path:
    """A panel for each part measured: fold-in quality, latency under load, batch inference."""
    plt = pyplot()
    panels = [
        (draw, chosen)
        for draw, part in (
            (_plot_fold_in, "fold_in_summary"),
            (_plot_latency, "latency"),
            (_plot_batch, "batch"),
        )
        if (chosen := [r for r in rows if r["part"] == part])
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.7 * len(panels), 4.2), squeeze=False)
    for ax, (draw, chosen) in zip(axes[0], panels):
        draw(ax, chosen)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench serving", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--part",
        nargs="+",
        choices=("fold_in", "latency", "batch"),
        default=["fold_in", "latency", "batch"],
    )
    parser.add_argument(
        "--models", nargs="+", choices=tuple(FOLD_IN_MODELS), default=list(FOLD_IN_MODELS)
    )
    add_override_argument(parser, "config override for the fold-in runs")
    parser.add_argument(
        "--fold-in-steps",
        type=whole(),
        help="BPR steps fitting a new user's ID row (default: the handle's, 50 for ID models)",
    )
    parser.add_argument("--seeds", type=whole(0), nargs="+", default=[0, 1, 2])
    parser.add_argument("--items", type=whole(), default=1_000_000, help="items of the latency run")
    parser.add_argument("--users", type=whole(), default=100_000, help="users of the latency run")
    parser.add_argument(
        "--steps", type=whole(), default=30, help="training steps of the latency run"
    )
    parser.add_argument("--index", choices=("hnsw", "ivf", "flat"), default="hnsw")
    parser.add_argument("--ef-construction", type=whole(), default=40)
    parser.add_argument("--concurrency", type=whole(), nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=real(), default=10.0, help="each load's duration")
    parser.add_argument("--port", type=whole(), default=8765)
    parser.add_argument(
        "--batch-users", type=whole(), default=1_000_000, help="users of the batch run"
    )
    parser.add_argument(
        "--batch-items", type=whole(), default=100_000, help="items of the batch run"
    )
    parser.add_argument("--workers", type=whole(), default=2, help="Ray Data workers (batch)")
    add_output_argument(parser, "serving")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gnnrec-serving-") as tmp:
        if "fold_in" in args.part:
            per_seed = []
            for name in args.models:
                recipe, extra = FOLD_IN_MODELS[name]
                for seed in args.seeds:
                    per_seed += fold_in_rows(name, recipe, extra, args, Path(tmp), seed)
            rows += per_seed + fold_in_summary(per_seed)
        if "latency" in args.part:
            rows += latency_rows(args, Path(tmp))
        if "batch" in args.part:
            rows += batch_rows(args, Path(tmp))
    return report(rows, args.output, plot, table)


if __name__ == "__main__":
    main()
