"""Evaluating a model, in one place: its final embeddings, validation metrics (early
stopping) and the test report with its baselines. The metrics themselves are in
:mod:`gnnrec.train.metrics`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch

from gnnrec.common.typed_fields import check_fields
from gnnrec.models.graph_view import GraphView
from gnnrec.models.recommender import Recommender
from gnnrec.train.baselines import fit_rating_biases
from gnnrec.train.metrics import (
    UserScores,
    full_ranking_metrics,
    popularity_scores,
    rating_metrics,
)
from gnnrec.train.training_data import Pairs, TrainingData

RATING_METRICS = ("rmse", "mae")
# every ranking metric at 20 (train/metrics.py), validated each epoch and selectable
RANKING_METRICS = tuple(
    f"{name}@20"
    for name in (
        "recall", "ndcg", "precision", "hitrate", "mrr", "f1",
        "coverage", "gini", "popularity", "personalization",
    )
)  # fmt: skip
SELECTIONS = ("auto", *RANKING_METRICS, *RATING_METRICS)
LOWER_IS_BETTER = frozenset({"rmse", "mae", "gini@20", "popularity@20"})


@dataclass(kw_only=True)
class EvalConfig:
    """``ks``: the cut-offs of every ranking metric (20 is always among them); ``select``: the
    validation metric that picks the best epoch (any ranking metric at 20, e.g. ``ndcg@20``,
    ``mrr@20`` or ``coverage@20``; the lower the better for ``gini@20`` and ``popularity@20``;
    ``rmse`` or ``mae`` for ratings; ``auto``: Recall@20, or RMSE with ``train.objective =
    "mse"``); ``top_k``: recommendations written per user; ``test_users``: > 0 ranks a seeded
    sample of that many test users (``test_user_seed``) instead of all of them, for graphs
    whose full ranking would take too long; the sample is stated in ``metrics.json``."""

    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"ks", "top_k", "chunk_nodes", "test_users", "test_user_seed", "recommend_users"}
    )

    ks: list[int] = field(default_factory=lambda: [10, 20])
    select: Literal[SELECTIONS] = "auto"
    top_k: int = 10
    # > 0: final embeddings computed this many nodes at a time (device memory bounded by the
    # chunk, the result kept on the host); 0: the whole graph at once
    chunk_nodes: int = 0
    test_users: int = 0
    test_user_seed: int = 0
    # > 0: recommendations.csv for a sample of this many users drawn with test_user_seed (every
    # user costs U x I scores: 10^13 for 10^7 users and 10^6 items); 0: every user
    recommend_users: int = 0

    def __post_init__(self) -> None:
        check_fields(self)
        if 20 not in self.ks or min(self.ks) < 1:
            raise ValueError("eval.ks must be positive and include 20")
        if self.top_k < 1:
            raise ValueError(f"eval.top_k must be at least 1, got {self.top_k}")
        if self.chunk_nodes < 0:
            raise ValueError(f"eval.chunk_nodes must be >= 0, got {self.chunk_nodes}")
        if self.recommend_users < 0:
            raise ValueError(f"eval.recommend_users must be >= 0, got {self.recommend_users}")
        if self.test_users < 0:
            raise ValueError(f"eval.test_users must be >= 0 (0: all), got {self.test_users}")


def node_embeddings(
    model: Recommender,
    data: TrainingData,
    view: GraphView | None = None,
    chunk_nodes: int = 0,
) -> torch.Tensor:
    """Final embeddings ``[U + I, H]`` of the users and items over the full training graph
    (entity nodes propagate but are not returned; no ID dropout), computed on the model's
    device and returned there; with ``chunk_nodes`` (< N), computed that many nodes at a time
    and returned on the host (:meth:`Recommender.embed_in_chunks`)."""
    model.eval()
    device = model.device
    has_edges = data.graph.csr.degree() > 0
    ranked = data.num_users + data.num_items
    if 0 < chunk_nodes < data.graph.num_nodes:
        host_view = view.to("cpu") if view is not None else GraphView.of(data.graph.csr)
        z = model.embed_in_chunks(data.features, host_view, has_edges, chunk_nodes, device)
        return z[:ranked]
    nodes = torch.arange(data.graph.num_nodes, device=device)
    x = None if data.features is None else data.features.to(device)
    view = (view or GraphView.of(data.graph.csr)).to(device)
    with torch.no_grad():
        return model(nodes, x, view, has_edges.to(device))[:ranked]


def predicted_ratings(model: Recommender, z: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """The rating head's predictions ``[E]`` (on the CPU) for ``(users, items)`` pairs."""
    u = torch.as_tensor(pairs[0], device=z.device)
    i = torch.as_tensor(pairs[1], device=z.device) + model.num_users
    with torch.no_grad():
        return model.rating(z[u], z[i], u, i).cpu()


def item_scores(model: Recommender, z: torch.Tensor, num_users: int) -> UserScores:
    """The model's scores (:meth:`Recommender.scores`) of final embeddings ``z`` ``[U + I, H]``."""

    def scores(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.scores(z[users.to(z.device)], z[num_users + items.to(z.device)])

    return scores


def selected_metric(select: str, objective: str) -> str:
    """The validation metric ``eval.select`` names for ``train.objective``."""
    if select == "auto":
        return "rmse" if objective == "mse" else "recall@20"
    return select


def validation_metrics(
    model: Recommender,
    z: torch.Tensor,
    data: TrainingData,
    valid: Pairs,
    objective: str,
    select: str = "auto",
) -> dict[str, float]:
    """Validation metrics of embeddings ``z`` (every ranking metric at 20, or the rating
    errors); ``score`` is what early stopping maximises: the metric ``select`` names
    (:func:`selected_metric`), negated where lower is better (:data:`LOWER_IS_BETTER`)."""
    name = selected_metric(select, objective)
    if objective == "mse":
        metrics = rating_metrics(predicted_ratings(model, z, valid), torch.as_tensor(valid[2]))
    else:
        U = data.num_users
        ranking = full_ranking_metrics(
            item_scores(model, z, U), data.train[:2], valid[:2], U, data.num_items, ks=(20,)
        )
        metrics = {m: ranking[m] for m in RANKING_METRICS}
        metrics["users"] = ranking["n_users_evaluated"]
    sign = -1.0 if name in LOWER_IS_BETTER else 1.0
    return {**metrics, "score": sign * metrics[name]}


def evaluation_report(
    model: Recommender,
    data: TrainingData,
    z: torch.Tensor,
    test: Pairs,
    ks: list[int],
    objective: str,
    cold_items: np.ndarray | None = None,
    test_users: int = 0,
    seed: int = 0,
) -> dict:
    """Test metrics of the model with final embeddings ``z`` ``[U + I, H]``
    (:func:`node_embeddings`) beside the popularity baseline; ``cold_items`` (boolean
    ``[I]``): also rank those items among themselves (``cold``); with the rating objective,
    MAE/RMSE beside the global mean and per-user/item biases. ``test_users`` > 0: every metric
    over the test pairs of that many users drawn with ``seed`` (``test_user_sample``)."""
    U, I = data.num_users, data.num_items
    users, items, ratings = test
    everyone = np.unique(users)
    sample = None
    if 0 < test_users < everyone.size:
        chosen = np.random.default_rng(seed).choice(everyone, test_users, replace=False)
        keep = np.isin(users, chosen)
        users, items, ratings = users[keep], items[keep], ratings[keep]
        test = (users, items, ratings)
        sample = {"users": test_users, "of": int(everyone.size), "seed": seed}

    def ranking(score, candidates=None):
        return full_ranking_metrics(score, data.train[:2], (users, items), U, I, ks, candidates)

    model_scores = item_scores(model, z, U)
    popularity = popularity_scores(data.train[1], I)
    metrics = {**ranking(model_scores), "baselines": {"popularity": ranking(popularity)}}
    if sample is not None:
        metrics["test_user_sample"] = sample
    if cold_items is not None and cold_items.any():
        metrics["cold"] = {
            **ranking(model_scores, cold_items),
            "n_cold_items": int(cold_items.sum()),
        }
        metrics["baselines"]["popularity"]["cold"] = ranking(popularity, cold_items)
        metrics["baselines"]["random"] = {
            "cold": {f"recall@{k}": min(1.0, k / cold_items.sum()) for k in ks}
        }
    if objective == "mse":
        target = torch.as_tensor(ratings)
        predicted = predicted_ratings(model, z, test)
        metrics.update(rating_metrics(predicted, target))
        mean = float(data.train[2].mean())
        metrics["baselines"]["global_mean"] = rating_metrics(
            torch.full_like(predicted, mean), target
        )
        biases = fit_rating_biases(*data.train, U, I)
        predicted_biases = torch.from_numpy(biases.predict(users, items)).float()
        metrics["baselines"]["biases"] = rating_metrics(predicted_biases, target)
    return metrics
