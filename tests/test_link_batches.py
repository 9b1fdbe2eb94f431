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


def test_user_sampling_draws_users_uniformly_like_published_lightgcn():
    """One heavy user with 400 pairs and 50 light users with 2 each: by pairs the heavy user is
    80% of the positives, by users 1/51 of them; either way E draws an epoch, every drawn
    positive is one of the user's own, and each of a user's items is equally likely."""
    users = np.concatenate([np.zeros(400, int), np.repeat(np.arange(1, 51), 2)])
    items = np.concatenate([np.arange(400) % 60, np.tile([0, 1], 50)])
    batcher = LinkBatcher(users, items, 60, batch_size=100, sampling="users")
    counts = np.zeros(51)
    heavy_items = np.zeros(60)
    generator = torch.Generator().manual_seed(0)
    drawn = 0
    for _ in range(40):
        for batch in batcher.epoch(generator):
            assert torch.equal(batch.users, torch.as_tensor(users)[batch.index])
            assert torch.equal(batch.pos_items, torch.as_tensor(items)[batch.index])
            counts += np.bincount(batch.users.numpy(), minlength=51)
            heavy = batch.users == 0
            heavy_items += np.bincount(batch.pos_items[heavy].numpy(), minlength=60)
            drawn += len(batch)
    assert drawn == 40 * 500 and len(batcher) == 5
    expected = drawn / 51
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 90  # 50 degrees of freedom: p < 1e-3 above 86.7
    # the heavy user's 400 pairs cover items 0..59 (6 or 7 times each): uniform over pairs
    expected_items = np.bincount(np.arange(400) % 60, minlength=60) / 400 * heavy_items.sum()
    chi2 = ((heavy_items - expected_items) ** 2 / expected_items).sum()
    assert chi2 < 99.6  # 59 degrees of freedom: p < 1e-3 above 99.6
