"""Evaluation: full ranking (the LightGCN protocol) and rating error.

For each test user ``u`` with test items ``T_u``: all items are scored, the user's training
positives are masked out, and the top ``K`` list ``R_u`` is compared with ``T_u``:

- Recall@K = ``|R_u ∩ T_u| / |T_u|``; Precision@K = ``|R_u ∩ T_u| / K``;
  HitRate@K = ``[R_u ∩ T_u ≠ ∅]``;
- NDCG@K = ``DCG / IDCG`` with ``DCG = sum_r rel_r / log2(r + 2)`` (binary relevance, rank ``r``
  from 0) and ``IDCG`` over ``min(K, |T_u|)`` hits;

each averaged over all users with at least one test item. ``candidates`` restricts ranking to a
subset of items (the cold-start report ranks cold items among cold items only). Ties are broken
in a fixed random order of the items (``tie_seed``), not by item index: a model that cannot
tell items apart (an ID-only model on unseen items) then scores like random, instead of
inheriting whatever the id order correlates with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

UserScores = Callable[[torch.Tensor], torch.Tensor]  # users [B] -> scores [B, I]


def _item_lists(users: np.ndarray, items: np.ndarray, num_users: int) -> list[np.ndarray]:
    order = np.lexsort((items, users))
    bounds = np.searchsorted(users[order], np.arange(num_users + 1))
    return [items[order[bounds[u] : bounds[u + 1]]] for u in range(num_users)]


def full_ranking_metrics(
    score_users: UserScores,
    train_pairs: tuple[np.ndarray, np.ndarray],
    test_pairs: tuple[np.ndarray, np.ndarray],
    num_users: int,
    num_items: int,
    ks: Sequence[int] = (10, 20),
    candidates: np.ndarray | None = None,
    batch_size: int = 256,
    tie_seed: int = 0,
) -> dict[str, float]:
    """``{"recall@K", "ndcg@K", "precision@K", "hitrate@K", "n_users_evaluated"}``.

    ``train_pairs``/``test_pairs``: ``(users [E], items [E])``; ``candidates``: boolean ``[I]``
    of rankable items (test items outside it are dropped).
    """
    test_users, test_items = test_pairs
    if candidates is not None:
        keep = candidates[test_items]
        test_users, test_items = test_users[keep], test_items[keep]
    test_lists = _item_lists(test_users, test_items, num_users)
    train_lists = _item_lists(train_pairs[0], train_pairs[1], num_users)
    users = np.array([u for u in range(num_users) if len(test_lists[u])], dtype=np.int64)
    k_max = max(ks)
    discount = 1.0 / np.log2(np.arange(k_max) + 2.0)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg", "precision", "hitrate")}
    blocked = None if candidates is None else torch.from_numpy(~candidates)
    shuffle = torch.randperm(num_items, generator=torch.Generator().manual_seed(tie_seed))
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        scores = score_users(torch.from_numpy(batch)).float().clone()
        rows = np.concatenate([np.full(len(train_lists[u]), r) for r, u in enumerate(batch)])
        cols = np.concatenate([train_lists[u] for u in batch])
        scores[torch.from_numpy(rows).long(), torch.from_numpy(cols).long()] = -torch.inf
        if blocked is not None:
            scores[:, blocked] = -torch.inf
        top = shuffle[torch.topk(scores[:, shuffle], min(k_max, num_items), dim=1).indices]
        top = top.numpy()
        for r, u in enumerate(batch):
            relevant = test_lists[u]
            hits = np.isin(top[r], relevant).astype(np.float64)
            for k in ks:
                n_hit = hits[:k].sum()
                idcg = discount[: min(k, len(relevant))].sum()
                sums[f"recall@{k}"] += n_hit / len(relevant)
                sums[f"precision@{k}"] += n_hit / k
                sums[f"hitrate@{k}"] += float(n_hit > 0)
                sums[f"ndcg@{k}"] += (hits[:k] * discount[: len(hits[:k])]).sum() / idcg
    n = max(len(users), 1)
    metrics = {name: float(value / n) for name, value in sums.items()}
    metrics["n_users_evaluated"] = int(len(users))
    return metrics


def rating_metrics(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``{"mae", "rmse"}`` of predicted ratings ``[E]`` against held-out ratings ``[E]``."""
    err = predicted.double() - target.double()
    return {"mae": float(err.abs().mean()), "rmse": float(err.pow(2).mean().sqrt())}


def popularity_scores(train_items: np.ndarray, num_items: int) -> UserScores:
    """The popularity baseline: every user gets the items' training interaction counts."""
    counts = torch.from_numpy(np.bincount(train_items, minlength=num_items).astype(np.float32))
    return lambda users: counts.expand(len(users), num_items)
