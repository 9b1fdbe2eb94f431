"""Evaluation: full ranking (the LightGCN protocol) and rating error.

For each test user ``u`` with test items ``T_u``: all items are scored, the user's training
positives are masked out, and the top ``K`` list ``R_u`` is compared with ``T_u``:

- Recall@K = ``|R_u ∩ T_u| / |T_u|``; Precision@K = ``|R_u ∩ T_u| / K``;
  HitRate@K = ``[R_u ∩ T_u ≠ ∅]``;
- NDCG@K = ``DCG / IDCG`` with ``DCG = sum_r rel_r / log2(r + 2)`` (binary relevance, rank ``r``
  from 0) and ``IDCG`` over ``min(K, |T_u|)`` hits;

- MRR@K = ``1 / (rank of the first hit, from 1)`` (0 without one); F1@K = ``2 P R / (P + R)``
  of that user's Precision@K and Recall@K (0 without a hit);

each averaged over all users with at least one test item (as PyG's ``LinkPredRecall``,
``LinkPredMRR``, ``LinkPredF1``, ... average them). Beyond accuracy, over the same lists, with
``c_i`` the number of lists item ``i`` is in (its exposure) and ``n`` lists of ``k`` items:

- Coverage@K = the share of the ``I`` rankable items in some list (``LinkPredCoverage``);
- Gini@K = the Gini coefficient of the exposures over the rankable items,
  ``sum_ij |c_i - c_j| / (2 I sum_i c_i)`` (0: every item shown alike; towards 1: a few
  items shown to everyone);
- Popularity@K = the mean over lists of the mean training interactions of their items
  (``LinkPredAveragePopularity``);
- Personalization@K = ``1 - `` the mean overlap ``|R_u ∩ R_v| / k`` over all pairs of lists
  (``LinkPredPersonalization`` over every user), computed from the exposures alone:
  ``sum_{u != v} |R_u ∩ R_v| = sum_i c_i^2 - sum_i c_i`` (0 with fewer than two lists).

A user with fewer than ``K`` items left to rank has a shorter list: its missing places count
as misses, and add nothing to exposure and popularity.

``candidates`` restricts ranking to a
subset of items (the cold-start report ranks cold items among cold items only). Ties are broken
in a fixed random order of the items (``tie_seed``), not by item index: a model that cannot
tell items apart (an ID-only model on unseen items) then scores like random, instead of
inheriting whatever the id order correlates with.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch

# (users [B], items [J]) -> scores [B, J], a tensor of its own (the ranking writes into it)
UserScores = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAX_SCORES = 1 << 24  # scores held at once: 64 MiB of fp32


def _by_user(users: np.ndarray, items: np.ndarray, num_users: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr [U + 1], items sorted by (user, item))``: user ``u``'s items are
    ``items[indptr[u]:indptr[u + 1]]``."""
    order = np.lexsort((items, users))
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=indptr[1:])
    return indptr, items[order]


def _rows_of(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR rows ``rows`` ``[B]``: ``(position in rows, entry index)`` of all their entries."""
    lengths = indptr[rows + 1] - indptr[rows]
    row = np.repeat(np.arange(rows.size), lengths)
    offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return row, np.repeat(indptr[rows], lengths) + offset


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
    max_scores: int = MAX_SCORES,
) -> dict[str, float]:
    """``{"recall@K", "ndcg@K", "precision@K", "hitrate@K", "mrr@K", "f1@K", "coverage@K",
    "gini@K", "popularity@K", "personalization@K", "n_users_evaluated"}``.

    ``train_pairs``/``test_pairs``: ``(users [E], items [E])``; ``candidates``: boolean ``[I]``
    of rankable items (test items outside it are dropped). Scores are ranked in batches of
    ``batch_size`` users with every metric computed for the batch at once, on the device the
    scores come on; items are scored ``max_scores // batch_size`` at a time (in the tie order),
    each block's top K merged into the running top K, so memory is bounded by the block.
    """
    test_users, test_items = (np.asarray(a, dtype=np.int64) for a in test_pairs)
    if candidates is not None:
        keep = candidates[test_items]
        test_users, test_items = test_users[keep], test_items[keep]
    relevant = np.bincount(test_users, minlength=num_users)  # |T_u|
    train_users, train_items = (np.asarray(a) for a in train_pairs)
    popularity = np.bincount(train_items.astype(np.int64, copy=False), minlength=num_items)
    ranked = (relevant > 0)[train_users]  # the training pairs of the users ranked here
    if not ranked.all():  # a sample of users: its pairs alone, not a sort of every pair
        train_users, train_items = train_users[ranked], train_items[ranked]
    del ranked
    train_ptr, train_items = _by_user(
        train_users.astype(np.int64, copy=False),
        train_items.astype(np.int64, copy=False),
        num_users,
    )
    test_keys = np.unique(test_users * num_items + test_items)
    users = np.flatnonzero(relevant)
    k_max = max(ks)
    discount = 1.0 / np.log2(np.arange(k_max) + 2.0)
    ideal = np.concatenate([[1.0], np.cumsum(discount)])  # IDCG of n hits (n >= 1)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in PER_USER}
    exposure = {k: np.zeros(num_items, dtype=np.int64) for k in ks}  # c_i of each cut-off
    # Ranking happens in a fixed random column order, so ties fall in that order.
    shuffle = torch.randperm(num_items, generator=torch.Generator().manual_seed(tie_seed))
    column = torch.empty_like(shuffle)
    column[shuffle] = torch.arange(num_items)
    blocked = None if candidates is None else torch.from_numpy(~candidates)[shuffle]

    @functools.cache
    def on(device: torch.device) -> torch.Tensor | None:
        """The blocked columns on the scores' device, moved there once."""
        return None if blocked is None else blocked.to(device)

    width = max(k_max, max_scores // batch_size)
    for start in range(0, len(users), batch_size):
        batch = users[start : start + batch_size]
        row, entry = _rows_of(train_ptr, batch)
        masked_rows = torch.from_numpy(row)
        masked_columns = column[torch.from_numpy(train_items[entry])]
        best = best_columns = None
        for first in range(0, num_items, width):
            columns = torch.arange(first, min(first + width, num_items))
            scores = score_users(torch.from_numpy(batch), shuffle[columns]).float()
            device = scores.device
            blocked_columns = on(device)
            inside = (masked_columns >= first) & (masked_columns < first + len(columns))
            rows, cols = masked_rows[inside].to(device), (masked_columns[inside] - first).to(device)
            scores[rows, cols] = -torch.inf
            if blocked_columns is not None:
                scores[:, blocked_columns[first : first + len(columns)]] = -torch.inf
            top = torch.topk(scores, min(k_max, len(columns)), dim=1)
            values, positions = top.values, top.indices + first
            if best is not None:
                values, positions = (
                    torch.cat([best, values], 1),
                    torch.cat([best_columns, positions], 1),
                )
                top = torch.topk(values, min(k_max, values.shape[1]), dim=1)
                values, positions = top.values, positions.gather(1, top.indices)
            best, best_columns = values, positions
        ranked = best_columns.cpu()
        top = shuffle[ranked].numpy()
        listed = (best > -torch.inf).cpu().numpy()  # a list holds no masked item
        keys = batch[:, None] * num_items + top
        found = np.searchsorted(test_keys, keys).clip(max=max(test_keys.size - 1, 0))
        hits = (test_keys[found] == keys).astype(np.float64)  # [B, min(K, I)]
        n_relevant = relevant[batch]
        ranks = np.arange(1, hits.shape[1] + 1)
        for k in ks:
            n_hit = hits[:, :k].sum(axis=1)
            dcg = (hits[:, :k] * discount[: hits[:, :k].shape[1]]).sum(axis=1)
            recall, precision = n_hit / n_relevant, n_hit / k
            sums[f"recall@{k}"] += float(recall.sum())
            sums[f"precision@{k}"] += float(precision.sum())
            sums[f"hitrate@{k}"] += float((n_hit > 0).sum())
            sums[f"ndcg@{k}"] += float((dcg / ideal[np.minimum(k, n_relevant)]).sum())
            sums[f"mrr@{k}"] += float((hits[:, :k] / ranks[:k]).max(axis=1, initial=0.0).sum())
            f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
            sums[f"f1@{k}"] += float(f1.sum())
            mine = listed[:, :k]
            shown = (popularity[top[:, :k]] * mine).sum(axis=1) / np.maximum(mine.sum(axis=1), 1)
            sums[f"popularity@{k}"] += float(shown.sum())
            exposure[k] += np.bincount(top[:, :k][mine], minlength=num_items)
    n = max(len(users), 1)
    metrics = {name: float(value / n) for name, value in sums.items()}
    rankable = np.ones(num_items, bool) if candidates is None else candidates
    for k in ks:
        metrics |= exposure_metrics(exposure[k], rankable, len(users), min(k, num_items), k)
    metrics["n_users_evaluated"] = int(len(users))
    return metrics


PER_USER = ("recall", "ndcg", "precision", "hitrate", "mrr", "f1", "popularity")


def exposure_metrics(
    exposure: np.ndarray, rankable: np.ndarray, lists: int, length: int, k: int
) -> dict[str, float]:
    """Coverage@K and Gini@K over the ``rankable`` items (bool ``[I]``) and Personalization@K
    (see the module docstring) of ``lists`` lists of at most ``length`` items (fewer where a
    user has fewer items left to rank; overlaps are counted out of ``length``), whose items
    were shown ``exposure`` ``[I]`` times."""
    shown = exposure.astype(np.float64)
    c = shown[rankable]
    total = c.sum()
    count, gini = len(c), 0.0
    if total > 0:  # Gini = sum_i (2 i - I - 1) c_(i) / (I sum c), c ascending, i from 1
        weights = 2 * np.arange(1, count + 1) - count - 1
        gini = float((weights * np.sort(c)).sum() / (count * total))
    pairs = lists * (lists - 1)
    overlap = (float((shown * shown).sum() - shown.sum())) / (length * pairs) if pairs else 0.0
    return {
        f"coverage@{k}": float((c > 0).mean()) if count else 0.0,
        f"gini@{k}": gini,
        f"personalization@{k}": 1.0 - overlap if pairs else 0.0,
    }


def rating_metrics(predicted: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``{"mae", "rmse"}`` of predicted ratings ``[E]`` against held-out ratings ``[E]``."""
    err = predicted.double() - target.double()
    return {"mae": float(err.abs().mean()), "rmse": float(err.pow(2).mean().sqrt())}


def popularity_scores(train_items: np.ndarray, num_items: int) -> UserScores:
    """The popularity baseline: every user gets the items' training interaction counts."""
    counts = torch.from_numpy(np.bincount(train_items, minlength=num_items).astype(np.float32))
    return lambda users, items: counts[items].repeat(len(users), 1)
