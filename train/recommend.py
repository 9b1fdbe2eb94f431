"""Top-K recommendation from trained embeddings, for known users and for new users who are
described only by text."""

from __future__ import annotations

import numpy as np
import torch


def top_k_items(
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
    k: int,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    batch_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(items [U, k], scores [U, k])`` by dot product ``user_emb [U, H] . item_emb [I, H]``,
    with ``exclude = (users, items)`` pairs (training positives) never recommended; scored on
    the embeddings' device, returned on the CPU."""
    k = min(k, item_emb.shape[0])
    items, scores = [], []
    if exclude is not None:
        order = np.argsort(exclude[0], kind="stable")
        ex_users = torch.as_tensor(exclude[0][order], dtype=torch.int64)
        ex_items = torch.as_tensor(exclude[1][order], dtype=torch.int64)
    for start in range(0, user_emb.shape[0], batch_size):
        s = user_emb[start : start + batch_size] @ item_emb.T
        if exclude is not None:
            lo, hi = torch.searchsorted(ex_users, torch.tensor([start, start + s.shape[0]]))
            s[ex_users[lo:hi] - start, ex_items[lo:hi]] = -torch.inf
        top = torch.topk(s, k, dim=1)
        items.append(top.indices)
        scores.append(top.values)
    return torch.cat(items).cpu(), torch.cat(scores).cpu()
