"""Link mini-batches for BPR: training positives in a seeded random order, each with ``K``
negatives drawn uniformly from the items the user has not interacted with in training."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class LinkBatch:
    """``users`` ``[B]``, ``pos_items`` ``[B]``, ``neg_items`` ``[B, K]`` (item ids), and the
    index ``[B]`` of each positive in the training arrays (for ratings)."""

    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor
    index: torch.Tensor


class LinkBatcher:
    """Batches over training pairs ``(user [E], item [E])`` of ``num_items`` items."""

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        num_items: int,
        batch_size: int,
        num_negatives: int = 1,
        max_resample: int = 10,
    ):
        self.users = torch.as_tensor(users, dtype=torch.int64)
        self.items = torch.as_tensor(items, dtype=torch.int64)
        self.num_items = num_items
        self.batch_size, self.num_negatives, self.max_resample = (
            batch_size,
            num_negatives,
            max_resample,
        )
        self.positive_keys = torch.unique(self.users * num_items + self.items)

    def __len__(self) -> int:
        return (len(self.users) + self.batch_size - 1) // self.batch_size

    def _is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * self.num_items + items
        pos = torch.searchsorted(self.positive_keys, keys).clamp(max=len(self.positive_keys) - 1)
        return self.positive_keys[pos] == keys

    def negatives(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[B, K]`` uniform items, redrawn (up to ``max_resample`` times) where positive."""
        shape = (len(users), self.num_negatives)
        neg = torch.randint(self.num_items, shape, generator=generator)
        expanded = users.unsqueeze(-1).expand(shape)
        for _ in range(self.max_resample):
            clash = self._is_positive(expanded, neg)
            if not clash.any():
                break
            neg[clash] = torch.randint(self.num_items, (int(clash.sum()),), generator=generator)
        return neg

    def epoch(self, generator: torch.Generator) -> Iterator[LinkBatch]:
        order = torch.randperm(len(self.users), generator=generator)
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            users = self.users[index]
            yield LinkBatch(users, self.items[index], self.negatives(users, generator), index)
