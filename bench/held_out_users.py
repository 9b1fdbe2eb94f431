"""The users a ``new_users`` split holds out of training, as a bench places them: their
training-period items (best first: rating, then the latest), the seen and test pairs in their
own numbering ``0..B-1``, and Recall/NDCG@20 of any placement of them.

A placement is final embeddings ``z_users`` ``[B, H]`` scored against the trained items by the
model, or any score function of ``(users [b], items [i]) -> [b, i]`` (popularity); the items a
user gave are excluded from their ranking, as a service excludes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

K = 20


@dataclass
class HeldOutUsers:
    """``users`` ``[B]`` (user rows of the graph), ``item_rows`` (each one's training-period
    item rows, best first) and ``item_ids`` (the same as ids), ``seen`` and ``test``:
    ``(local users [E], item rows [E])``."""

    users: np.ndarray
    item_rows: list[np.ndarray]
    item_ids: list[list[str]]
    seen: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]


def held_out_users(graph, split) -> HeldOutUsers:
    """The held-out users of ``split`` (a ``new_users`` split of ``graph``)."""
    inter = graph.interactions
    users = split.new_users(graph)
    local = np.full(graph.num_users, -1)
    local[users] = np.arange(len(users))
    fold_users, fold_items = inter.user[split.fold_in], inter.item[split.fold_in]
    order = np.lexsort((-inter.timestamp[split.fold_in], -inter.rating[split.fold_in], fold_users))
    item_rows: list[list[int]] = [[] for _ in users]
    for k in order:
        item_rows[local[fold_users[k]]].append(int(fold_items[k]))
    is_new = local[inter.user[split.test]] >= 0
    return HeldOutUsers(
        users=users,
        item_rows=[np.asarray(rows, dtype=np.int64) for rows in item_rows],
        item_ids=[[graph.items.ids[i] for i in rows] for rows in item_rows],
        seen=(local[fold_users], fold_items),
        test=(local[inter.user[split.test][is_new]], inter.item[split.test][is_new]),
    )


def ranking_metrics(held: HeldOutUsers, scores: Callable, num_items: int) -> dict[str, float]:
    """Recall/NDCG@20 of the held-out users under ``scores(users, items) -> [b, i]``."""
    import torch

    from gnnrec.train.metrics import full_ranking_metrics

    def no_grad_scores(users, items):
        with torch.no_grad():
            return scores(users, items)

    out = full_ranking_metrics(
        no_grad_scores, held.seen, held.test, len(held.users), num_items, ks=(K,)
    )
    return {"recall@20": out["recall@20"], "ndcg@20": out["ndcg@20"]}


def embedding_scores(model, z_users, z_items) -> Callable:
    """The score function of users placed at ``z_users`` ``[B, H]`` among ``z_items``."""
    return lambda users, items: model.scores(z_users[users], z_items[items])
