"""Run-level operations behind the CLI: train, evaluate and recommend in a run directory.

A run directory holds ``config.toml``, ``checkpoints/last.pt`` (resumable), ``model.pt`` (the
best validated weights), ``metrics.jsonl`` (per epoch), ``metrics.json`` (test),
``training_curve.png`` and ``recommendations.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from gnnrec.config import RunConfig, load_config, save_config
from gnnrec.encoders import make_encoder
from gnnrec.pipeline import Prepared, build_model, prepare, test_pairs
from gnnrec.plots import plot_training_curve
from gnnrec.train.baselines import fit_rating_biases
from gnnrec.train.checkpoint import load_checkpoint, save_checkpoint
from gnnrec.train.evaluate import full_ranking_metrics, popularity_scores, rating_metrics
from gnnrec.train.model import GCNRecommender
from gnnrec.train.recommend import top_k_items
from gnnrec.train.trainer import Trainer, node_embeddings, write_history


def _write_json(data: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def evaluate(prepared: Prepared, model: GCNRecommender, config: RunConfig) -> dict:
    """Test metrics of the model and the baselines, as written to ``metrics.json``."""
    graph, split, data = prepared.graph, prepared.split, prepared.data
    U, I, ks = data.num_users, data.num_items, config.eval.ks
    z = node_embeddings(model, data)
    users, items, ratings = test_pairs(prepared)
    train_pairs = data.train[:2]

    def ranking(score, candidates=None):
        return full_ranking_metrics(score, train_pairs, (users, items), U, I, ks, candidates)

    model_scores = lambda b: z[b] @ z[U:].T  # noqa: E731
    popularity = popularity_scores(data.train[1], I)
    metrics = {
        "dataset": graph.name,
        "split": split.name,
        "model": config.model.name,
        "model_label": config.model.label,
        **ranking(model_scores),
        "baselines": {"popularity": ranking(popularity)},
    }
    cold = split.cold_items(graph)
    if cold.any():
        metrics["cold"] = {**ranking(model_scores, cold), "n_cold_items": int(cold.sum())}
        metrics["baselines"]["popularity"]["cold"] = ranking(popularity, cold)
        metrics["baselines"]["random"] = {
            "cold": {f"recall@{k}": min(1.0, k / cold.sum()) for k in ks}
        }
    if config.train.objective == "mse":
        u, i = torch.as_tensor(users).to(z.device), torch.as_tensor(items).to(z.device) + U
        with torch.no_grad():
            predicted = model.rating(z[u], z[i], u, i).cpu()
        metrics.update(rating_metrics(predicted, torch.as_tensor(ratings)))
        target = torch.as_tensor(ratings)
        mean = float(data.train[2].mean())
        metrics["baselines"]["global_mean"] = rating_metrics(
            torch.full_like(predicted, mean), target
        )
        biases = fit_rating_biases(*data.train, U, data.num_items)
        predicted_biases = torch.from_numpy(biases.predict(users, items)).float()
        metrics["baselines"]["biases"] = rating_metrics(predicted_biases, target)
    return metrics


# Settings that may change between a run and its resumption; anything else must stay the same.
# (Changing parallel.num_workers changes the default partitions, which a resume refuses.)
RESUMABLE_CHANGES = {("train", key) for key in ("epochs", "patience", "progress", "device")}
RESUMABLE_CHANGES |= {("encoder", "device")} | {
    ("parallel", key)
    for key in (
        "num_workers",
        "gpus_per_worker",
        "cpus_per_worker",
        "address",
        "max_failures",
        "checkpoints_to_keep",
        "backend",
    )
}


def check_resumable(config: RunConfig, run_dir: Path) -> None:
    """Refuses to resume a checkpoint that was trained under a different configuration."""
    saved_file = run_dir / "config.toml"
    checkpoints = (run_dir / "checkpoints" / "last.pt", run_dir / "ray")
    if not (saved_file.exists() and any(c.exists() for c in checkpoints)):
        return
    saved, new = dataclasses.asdict(load_config(saved_file)), dataclasses.asdict(config)
    on_ray = bool(saved["parallel"]["num_workers"])
    if on_ray != bool(new["parallel"]["num_workers"]):
        raise ValueError(
            f"{run_dir} was trained {'on Ray' if on_ray else 'in one process'}; resume it the "
            "same way (parallel.num_workers = 0 trains in one process) or choose a new --run-dir"
        )
    changed = [
        f"{section}.{key}"
        for section, values in new.items()
        if isinstance(values, dict)
        for key, value in values.items()
        if saved.get(section, {}).get(key) != value and (section, key) not in RESUMABLE_CHANGES
    ]
    if changed:
        raise ValueError(
            f"{run_dir} holds a checkpoint trained with different {', '.join(changed)}; "
            "resume with the same configuration or choose a new --run-dir"
        )


def train_run(config: RunConfig, on_step: Callable[[int], None] | None = None) -> dict:
    """Trains (resuming when ``run_dir`` has a checkpoint), evaluates, writes every artifact."""
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    check_resumable(config, run_dir)
    save_config(config, run_dir / "config.toml")
    prepared = prepare(config, progress=config.train.progress)
    model = build_model(config, prepared.data)
    if config.parallel.num_workers:
        from gnnrec.distributed.ray_train import fit_on_ray

        fit = fit_on_ray(config, prepared.data)
        model.load_state_dict(fit.state)
        history, best_epoch = fit.history, fit.best_epoch
        write_history(history, run_dir)
    else:
        model.to(config.train.torch_device())
        trainer = Trainer(
            model, prepared.data, config.train, run_dir, on_step, shard=config.parallel.shard(0)
        )
        history, best_epoch = trainer.train(), trainer.best_epoch
    save_checkpoint({"model": model.state_dict()}, run_dir / "model.pt")
    plot_training_curve(history, run_dir / "training_curve.png")
    metrics = evaluate(prepared, model, config)
    metrics["best_epoch"] = best_epoch
    metrics["epochs_run"] = len(history)
    layout = config.parallel
    metrics["trained_on"] = (
        f"{layout.num_workers} Ray workers, {'1 GPU' if layout.gpus_per_worker else 'CPUs'} each"
        if layout.num_workers
        else str(config.train.torch_device())
    )
    _write_json(metrics, run_dir / "metrics.json")
    write_recommendations(prepared, model, config, run_dir / "recommendations.csv")
    return metrics


def load_run(
    run_dir: str | Path, overrides: list[str] | None = None, progress: bool = False
) -> tuple[RunConfig, Prepared, GCNRecommender]:
    """The config, data and best model of a finished run."""
    run_dir = Path(run_dir)
    model_file = run_dir / "model.pt"
    if not model_file.exists():
        raise FileNotFoundError(f"{model_file} does not exist: train the run first")
    config = load_config(run_dir / "config.toml", overrides)
    prepared = prepare(config, progress=progress)
    model = build_model(config, prepared.data).to(config.train.torch_device())
    model.load_state_dict(load_checkpoint(model_file)["model"])
    return config, prepared, model.eval()


def evaluate_run(run_dir: str | Path) -> dict:
    config, prepared, model = load_run(run_dir)
    metrics = evaluate(prepared, model, config)
    previous = Path(run_dir) / "metrics.json"
    if previous.exists():
        old = json.loads(previous.read_text())
        metrics.update({k: old[k] for k in ("best_epoch", "epochs_run", "trained_on") if k in old})
    _write_json(metrics, previous)
    return metrics


def write_recommendations(
    prepared: Prepared, model: GCNRecommender, config: RunConfig, path: str | Path
) -> Path:
    """Top-K items per user with training positives excluded: CSV or Parquet by suffix."""
    data, graph, U = prepared.data, prepared.graph, prepared.data.num_users
    z = node_embeddings(model, data)
    items, scores = top_k_items(z[:U], z[U:], config.eval.top_k, exclude=data.train[:2])
    titles = graph.items.text_fields.get("title", graph.items.ids)
    rows = {"user_id": [], "rank": [], "item_id": [], "title": [], "score": []}
    for u in range(U):
        for r in range(items.shape[1]):
            i = int(items[u, r])
            for key, value in (
                ("user_id", graph.users.ids[u]),
                ("rank", r + 1),
                ("item_id", graph.items.ids[i]),
                ("title", titles[i]),
                ("score", round(float(scores[u, r]), 6)),
            ):
                rows[key].append(value)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(rows), tmp)
    else:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(rows)
            writer.writerows(zip(*rows.values()))
    os.replace(tmp, path)
    return path


def recommend_for_text(
    prepared: Prepared, model: GCNRecommender, config: RunConfig, text: str, k: int = 10
) -> list[tuple[str, str, float]]:
    """``(item_id, title, score)`` for a new user described only by ``text``: the user is
    placed by the text projection alone (no ID, no edges) and scored against every item."""
    if model.project is None:
        raise ValueError("this model uses no text features, so it cannot place a text-only user")
    x = make_encoder(config.encoder).encode([text], progress=False).float()
    z = node_embeddings(model, prepared.data)
    x = x.to(z.device)
    with torch.no_grad():
        user = model.project(x)
    items, scores = top_k_items(user, z[prepared.data.num_users :], k)
    titles = prepared.graph.items.text_fields.get("title", prepared.graph.items.ids)
    return [
        (prepared.graph.items.ids[int(i)], titles[int(i)], float(s))
        for i, s in zip(items[0], scores[0])
    ]
