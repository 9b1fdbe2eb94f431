"""Top-K recommendation from trained embeddings, for known users and for new users who are
described only by text.

Scores are computed a block of ``[users, items]`` at a time (at most ``max_scores`` of them),
and each block's top K is merged with the running top K of the earlier item blocks, so memory
is bounded by the block, not by ``U x I``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

MAX_SCORES = 1 << 24  # scores held at once: 64 MiB of fp32
Scores = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # [B, H], [C, H] -> [B, C]


def dot_scores(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    return users @ items.T


def top_k_batches(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    k: int,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int = 1024,
    max_scores: int = MAX_SCORES,
    score: Scores = dot_scores,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yields ``(start, items [B, k], scores [B, k])`` for users ``start .. start + B`` by
    ``score(user_emb [U, H], item_emb [I, H])`` (dot products unless given; a model's
    :meth:`~gnnrec.models.recommender.Recommender.scores`), best first, with
    ``exclude = (users, items)`` pairs (training positives) never recommended; scored on the
    embeddings' device, yielded on the CPU. A user with fewer than ``k`` items left gets the
    excluded ones last, scored ``-inf``: callers that show items drop those. Items are scored
    ``max_scores // B`` at a time and merged into the running top K; with one block
    (``I <= max_scores // B``) this is one ``topk`` over all items."""
    k = min(k, item_emb.shape[0])
    if exclude is not None:
        order = np.argsort(exclude[0], kind="stable")
        ex_users = torch.as_tensor(exclude[0][order], dtype=torch.int64)
        ex_items = torch.as_tensor(exclude[1][order], dtype=torch.int64)
    num_items = item_emb.shape[0]
    for start in range(0, user_emb.shape[0], batch_size):
        users = user_emb[start : start + batch_size]
        width = max(k, max_scores // users.shape[0])
        if exclude is not None:
            lo, hi = torch.searchsorted(ex_users, torch.tensor([start, start + users.shape[0]]))
            rows, cols = ex_users[lo:hi] - start, ex_items[lo:hi]
        best_items = best_scores = None
        for first in range(0, num_items, width):
            with torch.no_grad():  # ranking: no gradients
                s = score(users, item_emb[first : first + width])
            if exclude is not None:
                inside = (cols >= first) & (cols < first + s.shape[1])
                s[rows[inside], cols[inside] - first] = -torch.inf
            top = torch.topk(s, min(k, s.shape[1]), dim=1)
            items, scores = top.indices + first, top.values
            if best_items is not None:
                items = torch.cat([best_items, items], dim=1)
                scores = torch.cat([best_scores, scores], dim=1)
                top = torch.topk(scores, k, dim=1)
                items, scores = items.gather(1, top.indices), top.values
            best_items, best_scores = items, scores
        yield start, best_items.cpu(), best_scores.cpu()


def top_k_items(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    k: int,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int = 1024,
    max_scores: int = MAX_SCORES,
    score: Scores = dot_scores,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(items [U, k], scores [U, k])``: :func:`top_k_batches` gathered."""
    batches = list(top_k_batches(user_emb, item_emb, k, exclude, batch_size, max_scores, score))
    if not batches:
        k = min(k, item_emb.shape[0])
        return torch.zeros(0, k, dtype=torch.int64), torch.zeros(0, k)
    return torch.cat([b[1] for b in batches]), torch.cat([b[2] for b in batches])
