"""Link mini-batches for BPR: ``E`` training positives per epoch, each with ``K`` negatives drawn
uniformly from the items the user has not interacted with in training.

Two ways to choose the positives (``sampling``): ``pairs`` visits every training pair once, in a
seeded random order (users weighted by their number of items); ``users`` is the published
LightGCN sampler (He et al., 2020, ``UniformSample_original``): each of the ``E`` draws picks a
user uniformly (among users with training items), then one of that user's items uniformly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from gnnrec.data.graph_store import CSR


@dataclass
class LinkBatch:
    """``users`` ``[B]``, ``pos_items`` ``[B]``, ``neg_items`` ``[B, K]`` (item ids), and the
    index ``[B]`` of each positive in the training arrays (for ratings)."""

    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.users.numel()

    def to(self, device: torch.device) -> LinkBatch:
        fields = (self.users, self.pos_items, self.neg_items, self.index)
        return LinkBatch(*(t.to(device, non_blocking=True) for t in fields))

    def part(self, k: int, parts: int) -> LinkBatch:
        """The ``k``-th of ``parts`` contiguous slices whose sizes differ by at most one."""
        if parts == 1:
            return self
        fields = (self.users, self.pos_items, self.neg_items, self.index)
        return LinkBatch(*(torch.tensor_split(t, parts)[k] for t in fields))


SAMPLINGS = ("pairs", "users")


class LinkBatcher:
    """Batches over training pairs ``(user [E], item [E])`` of ``num_items`` items, chosen as
    ``sampling`` says (see the module docstring).

    ``positives``: a CSR whose row ``u`` lists ``item + item_offset`` for every training pair
    (the training graph itself, with ``item_offset = U``), used to reject negatives without a
    private copy of the pairs; by default it is built from the pairs.
    """

    def __init__(
        self,
        users: np.ndarray,
        items: np.ndarray,
        num_items: int,
        batch_size: int,
        num_negatives: int = 1,
        max_resample: int = 10,
        positives: CSR | None = None,
        item_offset: int = 0,
        sampling: str = "pairs",
    ):
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.sampling = sampling
        self.users = torch.as_tensor(users, dtype=torch.int64)
        self.items = torch.as_tensor(items, dtype=torch.int64)
        self.num_items = num_items
        self.batch_size, self.num_negatives, self.max_resample = (
            batch_size,
            num_negatives,
            max_resample,
        )
        if positives is None:
            num_users = int(self.users.max()) + 1 if self.users.numel() else 0
            positives = CSR.from_edges(self.users, self.items, num_users, num_items)
            item_offset = 0
        self.positives, self.item_offset = positives, item_offset
        if sampling == "users":
            # Per user, the positions of their pairs: pair_order[pair_ptr[u]:pair_ptr[u + 1]].
            self.pair_order = torch.argsort(self.users, stable=True)
            counts = torch.bincount(self.users) if self.users.numel() else torch.zeros(0, dtype=int)
            self.pair_ptr = torch.zeros(counts.numel() + 1, dtype=torch.int64)
            self.pair_ptr[1:] = torch.cumsum(counts, 0)
            self.active_users = torch.nonzero(counts).flatten()

    def __len__(self) -> int:
        return (len(self.users) + self.batch_size - 1) // self.batch_size

    def negatives(self, users: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``[B, K]`` uniform items, redrawn (up to ``max_resample`` times) where positive."""
        shape = (len(users), self.num_negatives)
        neg = torch.randint(self.num_items, shape, generator=generator)
        expanded = users.unsqueeze(-1).expand(shape)
        for _ in range(self.max_resample):
            clash = self.positives.contains(expanded, neg + self.item_offset)
            if not clash.any():
                break
            neg[clash] = torch.randint(self.num_items, (int(clash.sum()),), generator=generator)
        return neg

    def user_draws(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """Pair indices ``[count]``: a uniform user (among users with pairs), then a uniform
        pair of that user's."""
        pick = torch.randint(self.active_users.numel(), (count,), generator=generator)
        users = self.active_users[pick]
        start, degree = self.pair_ptr[users], self.pair_ptr[users + 1] - self.pair_ptr[users]
        offset = (torch.rand(count, generator=generator, dtype=torch.float64) * degree).long()
        return self.pair_order[start + offset.clamp(max=degree - 1)]

    def epoch(self, generator: torch.Generator) -> Iterator[LinkBatch]:
        E = len(self.users)
        order = torch.randperm(E, generator=generator) if self.sampling == "pairs" else None
        for start in range(0, E, self.batch_size):
            if order is None:
                index = self.user_draws(min(self.batch_size, E - start), generator)
            else:
                index = order[start : start + self.batch_size]
            users = self.users[index]
            yield LinkBatch(users, self.items[index], self.negatives(users, generator), index)
