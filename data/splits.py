"""Seeded train/validation/test splits of a TextGraph's interactions.

Each split is a set of index arrays into ``graph.interactions``. ``random``: per user, a
``test_fraction`` of that user's interactions at random; ``temporal``: per user, the last
``k`` by timestamp; ``cold_items``: a fraction of the interacted items held out with all their
interactions; ``new_users``: ``random``, then a fraction of the users held out of training
entirely, their training-period interactions kept apart as ``fold_in`` (what such a user gives
a trained model to be folded in from) and their test interactions kept in ``test`` (the same
test set as ``random`` with the same seed, so the two compare user for user). A validation set
for early stopping is carved from training the same way as ``random``. Every user keeps at
least one training interaction in the per-user splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gnnrec.data.textgraph import TextGraph

SPLITS = ("random", "temporal", "cold_items", "new_users", "predefined")


@dataclass
class Split:
    """Index arrays into the interactions; ``name`` says how they were drawn. ``fold_in``: the
    training-period interactions of users held out of training (``new_users``), else empty."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    fold_in: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def new_users(self, graph: TextGraph) -> np.ndarray:
        """The users held out of training (sorted user rows; empty for other splits)."""
        return np.unique(graph.interactions.user[self.fold_in])

    def cold_items(self, graph: TextGraph) -> np.ndarray:
        """Items that occur in test but never in train (boolean mask ``[I]``)."""
        seen = np.zeros(graph.num_items, dtype=bool)
        seen[graph.interactions.item[self.train]] = True
        in_test = np.zeros(graph.num_items, dtype=bool)
        in_test[graph.interactions.item[self.test]] = True
        return in_test & ~seen


CHUNK = 1 << 22  # interactions at a time in the passes below (bounds their temporaries)


def _users_at(user: np.ndarray, index: np.ndarray | None, start: int, stop: int) -> np.ndarray:
    """The users of positions ``start:stop`` of ``index`` (of ``user`` itself when None)."""
    return user[start:stop] if index is None else user[index[start:stop]]


def _held_in_runs(
    order: np.ndarray,
    user: np.ndarray,
    index: np.ndarray | None,
    count: np.ndarray,
    held: np.ndarray,
    last: bool,
) -> np.ndarray:
    """For ``order`` that sorts positions by user (``count[u]`` positions each): whether each
    position is among its user's first (or ``last``) ``held[u]`` in that order, ``[n]`` bool.
    Position ``p`` of the order is in user ``u``'s run ``[start[u], start[u] + count[u])``."""
    start = np.cumsum(count) - count
    lo = start + count - held if last else start
    hi = start + count if last else start + held
    is_held = np.zeros(len(order), dtype=bool)
    for first in range(0, len(order), CHUNK):
        rows = order[first : first + CHUNK]
        u = user[rows] if index is None else user[index[rows]]
        p = np.arange(first, first + len(rows))
        is_held[rows] = (p >= lo[u]) & (p < hi[u])
    return is_held


def _user_counts(user: np.ndarray, index: np.ndarray | None, n: int) -> np.ndarray:
    """Positions per user ``[max user + 1]`` among the ``n`` positions of ``index``."""
    count = np.zeros(0, dtype=np.int64)
    for first in range(0, n, CHUNK):
        part = np.bincount(_users_at(user, index, first, first + CHUNK))
        count = np.pad(count, (0, max(0, len(part) - len(count))))
        count[: len(part)] += part
    return count


def random_holdout(
    index: np.ndarray, user: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, ``round(fraction * n)`` of ``index`` held out (at most ``n - 1``); returns
    (kept, held), each in ``index``'s order.

    One sort of ``user << b | random b-bit key`` (b = 64 - the user ids' bits): the held out
    are each user's first ``round(fraction * n)`` in key order, no Python loop over users;
    beside the sort, memory is a bool per interaction and chunks."""
    index = np.asarray(index, dtype=np.int64)
    count = _user_counts(user, index, len(index))
    bits = 64 - max(1, (len(count) - 1).bit_length())
    key = np.empty(len(index), dtype=np.uint64)
    for first in range(0, len(index), CHUNK):
        np.left_shift(
            _users_at(user, index, first, first + CHUNK).astype(np.uint64),
            np.uint64(bits),
            out=key[first : first + CHUNK],
        )
    key |= rng.integers(0, 2**bits, len(index), dtype=np.uint64)
    order = np.argsort(key)
    del key
    held = np.minimum(np.rint(fraction * count).astype(np.int64), np.maximum(count - 1, 0))
    is_held = _held_in_runs(order, user, index, count, held, last=False)
    return index[~is_held], index[is_held]


def latest_holdout(
    user: np.ndarray, timestamp: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the last ``k`` interactions by ``timestamp`` (ties by position) held out,
    at most ``n - 1``; returns (kept, held) indices."""
    order = np.lexsort((timestamp, user))
    count = _user_counts(user, None, len(user))
    held = np.minimum(k, np.maximum(count - 1, 0))
    is_held = _held_in_runs(order, user, None, count, held, last=True)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def split_interactions(
    graph: TextGraph,
    kind: str = "random",
    *,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.1,
    temporal_k: int = 5,
    cold_item_fraction: float = 0.2,
    new_user_fraction: float = 0.1,
    seed: int = 0,
) -> Split:
    """Draws a seeded split of ``kind`` in :data:`SPLITS` (except ``predefined``)."""
    if not 0.0 <= test_fraction < 1.0 or not 0.0 <= valid_fraction < 1.0:
        raise ValueError("test_fraction and valid_fraction must be in [0, 1)")
    rng = np.random.default_rng(seed)
    inter = graph.interactions
    everything = np.arange(len(inter))
    if kind in ("random", "new_users"):
        rest, test = random_holdout(everything, inter.user, test_fraction, rng)
    elif kind == "temporal":
        if temporal_k < 1:
            raise ValueError("temporal_k must be at least 1")
        rest, test = latest_holdout(inter.user, inter.timestamp, temporal_k)
    elif kind == "cold_items":
        if not 0.0 < cold_item_fraction < 1.0:
            raise ValueError("cold_item_fraction must be in (0, 1)")
        items = np.unique(inter.item)
        cold = rng.choice(
            items, size=max(1, int(round(cold_item_fraction * len(items)))), replace=False
        )
        is_test = np.isin(inter.item, cold)
        rest, test = everything[~is_test], everything[is_test]
    else:
        raise ValueError(f"unknown split {kind!r}; choose one of {SPLITS[:-1]}")
    train, valid = random_holdout(rest, inter.user, valid_fraction, rng)
    if kind != "new_users":
        return Split(kind, train, valid, test)
    if not 0.0 < new_user_fraction < 1.0:
        raise ValueError("new_user_fraction must be in (0, 1)")
    users = np.unique(inter.user[test])  # users with something to test
    chosen = rng.choice(
        users, size=max(1, int(round(new_user_fraction * len(users)))), replace=False
    )
    new = np.zeros(graph.num_users, dtype=bool)
    new[chosen] = True
    is_new = new[inter.user[train]]
    return Split(kind, train[~is_new], valid[~new[inter.user[valid]]], test, train[is_new])
