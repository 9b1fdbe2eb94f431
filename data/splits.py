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


def _per_user_groups(user: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(user, kind="stable")
    bounds = np.flatnonzero(np.diff(user[order])) + 1
    return np.split(order, bounds) if len(order) else []


def _sorted_union(parts: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def random_holdout(
    index: np.ndarray, user: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per user, ``round(fraction * n)`` of ``index`` held out (at most ``n - 1``)."""
    keep, held = [], []
    for group in _per_user_groups(user[index]):
        group = index[group]
        n_out = min(int(round(fraction * len(group))), len(group) - 1)
        perm = rng.permutation(group)
        held.append(perm[:n_out])
        keep.append(perm[n_out:])
    return _sorted_union(keep), _sorted_union(held)


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
        rest_parts, test_parts = [], []
        for group in _per_user_groups(inter.user):
            group = group[np.lexsort((group, inter.timestamp[group]))]
            n_out = min(temporal_k, len(group) - 1)
            rest_parts.append(group[: len(group) - n_out])
            test_parts.append(group[len(group) - n_out :])
        rest, test = np.sort(np.concatenate(rest_parts)), np.sort(np.concatenate(test_parts))
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
