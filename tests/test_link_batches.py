from __future__ import annotations

import numpy as np
import torch

from gnnrec.train.link_batches import LinkBatcher


def test_epoch_covers_every_positive_once_with_true_negatives():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 500), rng.integers(0, 40, 500)
    batcher = LinkBatcher(users, items, 40, batch_size=64, num_negatives=3)
    seen, positives = [], set(zip(users.tolist(), items.tolist()))
    for batch in batcher.epoch(torch.Generator().manual_seed(0)):
        assert batch.neg_items.shape == (len(batch.users), 3)
        assert torch.equal(batch.users, torch.as_tensor(users)[batch.index])
        for u, negs in zip(batch.users.tolist(), batch.neg_items.tolist()):
            assert all((u, n) not in positives for n in negs)
        seen.extend(batch.index.tolist())
    assert sorted(seen) == list(range(500))
    assert len(batcher) == 8


def test_same_generator_seed_gives_same_batches():
    users, items = np.arange(100) % 10, np.arange(100) % 17
    batcher = LinkBatcher(users, items, 17, batch_size=16)
    a = [b.neg_items for b in batcher.epoch(torch.Generator().manual_seed(5))]
    b = [b.neg_items for b in batcher.epoch(torch.Generator().manual_seed(5))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
