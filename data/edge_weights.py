"""Edge weights of the user–item graph: ``data.edge_weight``.

``none`` (every edge weighs 1), ``rating`` (the interaction's rating, the adjacency entry of
the original GCN recommender), ``count`` (how often the pair occurs in the log: a pair's
repeated rows collapse into one that weighs their number) or the name of a column of the
interaction table (the ``table`` dataset), each optionally as ``log1p(...)``
(``log(1 + x)``: counts and plays are heavy-tailed). Weights must be finite and
non-negative; they reach the graph as its CSR's ``values`` and the kernels as edge values,
with the normalisation computed from weighted degrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gnnrec.data.errors import DataError
from gnnrec.data.textgraph import Interactions, TextGraph

KEYWORDS = ("none", "rating", "count")
_FORM = re.compile(r"^(?:log1p\((?P<inner>[^()]+)\)|(?P<plain>[^()]+))$")


@dataclass(frozen=True)
class EdgeWeight:
    """A parsed ``data.edge_weight``: ``source`` (``"none"``, ``"rating"``, ``"count"`` or a
    column name) and whether ``log1p`` is applied."""

    source: str = "none"
    log1p: bool = False

    @staticmethod
    def parse(text: str) -> EdgeWeight:
        match = _FORM.match(text.strip())
        source = match and (match["inner"] or match["plain"]).strip()
        if not source:
            raise ValueError(
                f"data.edge_weight {text!r} is not one of none, rating, count, a column name "
                "or log1p(<one of them>)"
            )
        if source == "none" and match["inner"]:
            raise ValueError("data.edge_weight log1p(none) weighs nothing: write none")
        return EdgeWeight(source, bool(match["inner"]))

    @property
    def weighted(self) -> bool:
        return self.source != "none"

    @property
    def column(self) -> str | None:
        """The interaction table column this reads (None for the keywords)."""
        return None if self.source in KEYWORDS else self.source

    def __str__(self) -> str:
        return f"log1p({self.source})" if self.log1p else self.source


def pair_counts(inter: Interactions) -> np.ndarray:
    """How many rows of ``inter`` hold each row's (user, item) pair, float32 ``[E]``."""
    key = inter.user * (int(inter.item.max(initial=0)) + 1) + inter.item
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return counts[inverse].astype(np.float32)


def check_weight_source(graph: TextGraph, spec: EdgeWeight) -> None:
    """Raises when ``spec`` names a column the loaded dataset did not read."""
    if spec.column is not None and graph.interactions.weight is None:
        raise DataError(
            f"data.edge_weight reads column {spec.column!r}, which this dataset does not "
            "have (the table dataset reads any column of its interaction table); use none, "
            "rating or count",
            graph.name,
        )


def edge_weights(graph: TextGraph, spec: EdgeWeight) -> np.ndarray | None:
    """Every interaction's edge weight ``[E]`` float32 under ``spec`` (None for ``none``);
    a negative or non-finite weight is a :class:`DataError` naming the interaction, its user
    and item."""
    if not spec.weighted:
        return None
    inter = graph.interactions
    if spec.source == "rating":
        raw = inter.rating
    else:
        check_weight_source(graph, spec)
        raw = inter.weight
    bad = np.flatnonzero(~np.isfinite(raw) | (raw < 0))
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"data.edge_weight = {spec}: interaction {row} (user "
            f"{graph.users.ids[inter.user[row]]!r}, item {graph.items.ids[inter.item[row]]!r}) "
            f"has {spec.source} {float(raw[row])!r}; edge weights must be finite and >= 0",
            graph.name,
        )
    weight = np.asarray(raw, dtype=np.float32)
    return np.log1p(weight) if spec.log1p else weight.copy()
