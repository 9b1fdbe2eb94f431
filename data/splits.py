"""Seeded train/validation/test splits of a TextGraph's interactions.

Each split is a set of index arrays into ``graph.interactions``. ``random``: per user, a
``test_fraction`` of that user's interactions at random; ``temporal``: per user, the last
``k`` by timestamp; ``cold_items``: a fraction of the interacted items held out with all their
interactions. A validation set for early stopping is carved from training the same way as
``random``. Every user keeps at least one training interaction in the per-user splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnnrec.data.textgraph import TextGraph

SPLITS = ("random", "temporal", "cold_items", "predefined")


@dataclass
class Split:
    """Index arrays into the interactions; ``name`` says how they were drawn."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def cold_items(self, graph: TextGraph) -> np.ndarray:
        """Items that occur in test but never in train (boolean mask ``[I]``)."""
        seen = np.zeros(graph.num_items, dtype=bool)
        seen[graph.interactions.item[self.train]] = True
        in_test = np.zeros(graph.num_items, dtype=bool)
        in_test[graph.interactions.item[self.test]] = True
        return in_test & ~seen


def _rank_in_user(order: np.ndarray, user: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``order`` that groups ``user``: each sorted entry's rank within its user and that
    user's count (``[n]`` each)."""
    grouped = user[order]
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]]) if len(order) else order
    sizes = np.diff(np.r_[starts, len(order)])
    return np.arange(len(order)) - np.repeat(starts, sizes), np.repeat(sizes, sizes)


def random_holdout(
    index: np.ndarray, user: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, ``round(fraction * n)`` of ``index`` held out (at most ``n - 1``); returns
    (kept, held), each in ``index``'s order.

    One sort of ``user << b | random b-bit key`` (b = 64 - the user ids' bits): the held out
    are each user's first ``round(fraction * n)`` in key order, no Python loop over users."""
    index = np.asarray(index, dtype=np.int64)
    mine = user[index].astype(np.uint64)
    bits = 64 - max(1, int(mine.max(initial=0)).bit_length())
    key = (mine << np.uint64(bits)) | rng.integers(0, 2**bits, len(index), dtype=np.uint64)
    order = np.argsort(key)
    rank, count = _rank_in_user(order, mine)
    is_held = np.zeros(len(index), dtype=bool)
    is_held[order] = rank < np.minimum(np.rint(fraction * count).astype(np.int64), count - 1)
    return index[~is_held], index[is_held]


def latest_holdout(
    user: np.ndarray, timestamp: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the last ``k`` interactions by ``timestamp`` (ties by position) held out,
    at most ``n - 1``; returns (kept, held) indices."""
    order = np.lexsort((timestamp, user))
    rank, count = _rank_in_user(order, user)
    is_held = np.zeros(len(user), dtype=bool)
    is_held[order] = rank >= count - np.minimum(k, count - 1)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def split_interactions(
    graph: TextGraph,
    kind: str = "random",
    *,
    test_fraction: float = 0.2,
    valid_fraction: float = 0.1,
    temporal_k: int = 5,
    cold_item_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Draws a seeded split of ``kind`` in :data:`SPLITS` (except ``predefined``)."""
    if not 0.0 <= test_fraction < 1.0 or not 0.0 <= valid_fraction < 1.0:
        raise ValueError("test_fraction and valid_fraction must be in [0, 1)")
    rng = np.random.default_rng(seed)
    inter = graph.interactions
    everything = np.arange(len(inter))
    if kind == "random":
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
    return Split(kind, train, valid, test)
