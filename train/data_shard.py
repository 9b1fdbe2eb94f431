"""Which part of every global batch a training process computes.

A global batch of ``B`` examples is cut into ``P`` contiguous slices (``partitions``); process
``r`` of ``W`` computes slices ``r, r + W, ...`` and weights each slice's mean loss by
``W * B_p / B``, so that averaging gradients over the ``W`` processes (DDP) gives exactly the
gradient of the global batch's mean loss. Randomness drawn for a slice is seeded by the slice,
never by the process, so a run's result depends on ``P`` and not on how many processes share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DataShard:
    rank: int = 0
    world_size: int = 1
    partitions: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is outside a world of {self.world_size}")
        if self.partitions < 1 or self.partitions % self.world_size:
            raise ValueError(
                f"partitions ({self.partitions}) must be a positive multiple of the number of "
                f"workers ({self.world_size}), so that every worker computes as many slices"
            )

    @property
    def parts(self) -> range:
        """The slices of every global batch this process computes."""
        return range(self.rank, self.partitions, self.world_size)

    def weight(self, part_size: int, batch_size: int) -> float:
        """Loss weight of a slice: ``W * B_p / B`` (1.0 for the whole batch on one process)."""
        return self.world_size * part_size / batch_size


def slice_generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded from integer keys, e.g. ``(seed, epoch, step, slice)``."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))
