"""Top-K in blocks of items merged into a running top K equals one top K over all items."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.train.recommend import top_k_batches, top_k_items


def _reference(users, items, k, exclude):
    scores = users.double() @ items.double().T
    if exclude is not None:
        scores[torch.as_tensor(exclude[0]), torch.as_tensor(exclude[1])] = -torch.inf
    k = min(k, items.shape[0])
    top = torch.topk(scores, k, dim=1)
    return top.indices, top.values


@given(
    num_users=st.integers(1, 20),
    num_items=st.integers(1, 40),
    k=st.integers(1, 12),
    max_scores=st.integers(1, 200),
    batch_size=st.integers(1, 8),
    masked=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_blocked_top_k_equals_one_top_k(
    num_users, num_items, k, max_scores, batch_size, masked, seed
):
    g = torch.Generator().manual_seed(seed)
    # distinct integer scores: exact in fp32 whatever the blocking, and no ties to order
    items = torch.randperm(4 * num_items, generator=g)[:num_items].float()[:, None]
    users = torch.randint(1, 5, (num_users, 1), generator=g).float()
    exclude = None
    if masked:
        pairs = torch.randint(0, num_users * num_items, (num_users,), generator=g).unique()
        exclude = ((pairs // num_items).numpy(), (pairs % num_items).numpy())
    got_items, got_scores = top_k_items(users, items, k, exclude, batch_size, max_scores)
    want_items, want_scores = _reference(users, items, k, exclude)
    finite = torch.isfinite(want_scores)
    assert torch.equal(got_scores.double(), want_scores)
    assert torch.equal(got_items[finite], want_items[finite])  # masked tails: any order


def test_batches_cover_every_user_once_in_order():
    users, items = torch.randn(10, 4), torch.randn(7, 4)
    starts = [start for start, got, _ in top_k_batches(users, items, 3, batch_size=4)]
    assert starts == [0, 4, 8]
    assert top_k_items(users[:0], items, 3)[0].shape == (0, 3)
    assert top_k_items(users, items, 50)[0].shape == (10, 7)  # k capped at the item count
    assert np.isfinite(top_k_items(users, items, 7)[1].numpy()).all()
