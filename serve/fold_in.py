"""Fold-in: users placed into a trained model from the items they interacted with, without
retraining.

**Propagating models** (GCN, LightGCN, GAT): a user's final embedding is computed by the model's
own layers from their neighbours' trained layer inputs (:meth:`GCNRecommender.fold_in`), the
rest of the graph held at its trained state: the items keep their layer outputs and degrees.
A full recomputation with the new edges would also change each of those items (its degree
grows by one, so its scale ``d_i^{-1/2}`` shrinks, and its own layers now read the user),
and through them every node within ``L - 1`` hops; ``gnnrec bench serving`` measures that gap.
A known user is updated the same way: their layer 0 (ID embedding and text) is kept and their
row reads their training items and the new ones.

**MF and NCF** (no propagation): a user's embedding is their layer 0; a new user has no trained
ID row, so :func:`fit_rows` fits one to their items, a few steps of the BPR loss against the
trained items (everything else frozen), the classic fold-in of matrix factorisation. A model
without an ID table places a new user by text alone; their items are only excluded.

A propagating model with ID embeddings may fit the new user's ID row the same way, through its
own fold-in (``fold_in_steps > 0``): what training would learn for that row, the rest frozen.

**Typed relations** (``model.relations = "typed"``): the user's edges are the ``rated_by``
relation, normalised by their number and each item's trained degree within that relation
(a user's friendships are not read). **Weighted edges** (``data.edge_weight``): a user's trained
edges keep their weights; a new interaction weighs what one occurrence of a pair weighs under
``count`` (``1``, or ``log1p(1)``); a rating or a column is not known here, so a new
interaction of a run weighted by one is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gnnrec.data.graph_store import CSR
from gnnrec.data.hetero import RATED_BY
from gnnrec.models.recommender import Recommender

FIT_STEPS = 50  # BPR steps of fit_rows
FIT_NEGATIVES = 256  # items drawn per user as negatives
FIT_LR = 0.05


@dataclass
class GraphState:
    """What fold-in reads of a trained graph: the inputs ``states[l]`` ``[N, H]`` of each
    layer (:meth:`Recommender.layer_states`) and every node's column scale ``[N]``;
    ``weighted``: whether the graph's edges carry weights (``data.edge_weight``);
    ``relation_col_scale`` ``[R, N]``: with typed relations (``model.relations = "typed"``),
    every node's column scale within each relation (else None)."""

    states: list[torch.Tensor]
    col_scale: torch.Tensor
    num_users: int
    weighted: bool = False
    relation_col_scale: torch.Tensor | None = None

    def require_plain(
        self, what: str, instead: str, *, typed_ok: bool = False, weighted_ok: bool = False
    ) -> None:
        """Raises ``ValueError`` naming ``what`` (fold-in, an explanation), which reads a
        user's edges as one relation (``typed_ok``: or typed relations) without weights
        (``weighted_ok``: or with them), and what to do ``instead``: another graph is refused,
        not misread."""
        typed = self.relation_col_scale is not None and not typed_ok
        for refused, kind in (
            (self.weighted and not weighted_ok, "weighted edges (data.edge_weight)"),
            (typed, "typed relations (model.relations)"),
        ):
            if refused:
                raise ValueError(f"{what} is not built yet for a graph with {kind}; {instead}")


def neighbor_rows(
    item_lists: Sequence[np.ndarray],
    num_users: int,
    weights: Sequence[np.ndarray] | None = None,
    relations: Sequence[np.ndarray] | None = None,
) -> tuple[CSR, torch.Tensor]:
    """``(csr, columns)``: a CSR of one row per list over only the nodes the lists name (each
    list's item rows deduplicated and sorted, with their ``weights`` and ``relations`` when
    given: the CSR's values and relation ids), ``columns`` ``[M]`` their node ids."""
    firsts = [
        np.unique(np.asarray(items, dtype=np.int64), return_index=True) for items in item_lists
    ]
    lists = [items for items, _ in firsts]
    flat = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    columns, local = np.unique(flat, return_inverse=True)
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(items) for items in lists])

    def per_edge(arrays: Sequence[np.ndarray] | None, dtype) -> torch.Tensor | None:
        if arrays is None:
            return None
        kept = [np.asarray(a, dtype=dtype)[at] for a, (_, at) in zip(arrays, firsts)]
        return torch.from_numpy(np.concatenate(kept) if kept else np.zeros(0, dtype))

    csr = CSR(
        torch.from_numpy(indptr),
        torch.from_numpy(local.astype(np.int64)),
        len(columns),
        per_edge(weights, np.float32),
        per_edge(relations, np.int8),
    )
    return csr, torch.from_numpy(columns + num_users)


def fold_in_users(
    model: Recommender,
    graph: GraphState,
    h0: torch.Tensor,
    item_lists: Sequence[np.ndarray],
    weights: Sequence[np.ndarray] | None = None,
) -> torch.Tensor:
    """Final embeddings ``[B, H]`` of ``B`` users with layer 0 ``h0`` ``[B, H]`` whose edges
    go to the item rows ``item_lists[b]`` (weighing ``weights[b]`` over a weighted graph), by
    the model's own layers (the graph held fixed)."""
    graph.require_plain(
        "fold-in",
        "recommend for the run's own users, or retrain without them",
        typed_ok=True,
        weighted_ok=weights is not None,
    )
    csr, columns = neighbor_rows(item_lists, graph.num_users, weights)
    device = h0.device
    states = [s[columns.to(s.device)].to(device) for s in graph.states]
    col_scale = graph.col_scale[columns.to(graph.col_scale.device)].to(device)
    relation_col_scale = None
    if graph.relation_col_scale is not None:  # a user's edges: items -> user, rated_by
        csr.relation = torch.full((csr.num_edges,), RATED_BY, dtype=torch.int8)
        at = columns.to(graph.relation_col_scale.device)
        relation_col_scale = graph.relation_col_scale[:, at].to(device)
    return model.fold_in(h0, csr.to(device), states, col_scale, relation_col_scale)


def fit_rows(
    model: Recommender,
    embed: Callable[[int, torch.Tensor], torch.Tensor],
    z_items: torch.Tensor,
    item_lists: Sequence[np.ndarray],
    l2: float,
    steps: int = FIT_STEPS,
    seed: int = 0,
) -> torch.Tensor:
    """Embeddings ``[B, H]`` of users ``b`` whose final embedding is ``embed(b, e_b)`` ``[1, H]``
    for an ID row ``e_b`` ``[1, H]`` fitted to their items ``item_lists[b]`` (``e_b = 0`` with
    ``steps = 0``): ``steps`` Adam steps on

    .. math::
        -\\frac{1}{|P||N|}\\sum_{i \\in P, j \\in N} \\log\\sigma(s(u, i) - s(u, j))
        + \\lambda \\lVert e_u \\rVert^2

    with ``P`` the user's items, ``N`` :data:`FIT_NEGATIVES` other items drawn with ``seed``
    and ``s`` the model's score; the items and every weight stay as trained (the row is
    trained as training would train a new user's, the rest frozen)."""
    generator = np.random.default_rng(seed)
    num_items = z_items.shape[0]
    out = []
    for b, items in enumerate(item_lists):
        row = torch.zeros(1, z_items.shape[1], device=z_items.device, requires_grad=True)
        positives = torch.as_tensor(np.unique(np.asarray(items, dtype=np.int64)))
        negatives = torch.as_tensor(_negatives(generator, num_items, positives.numpy()))
        if steps and positives.numel() and negatives.numel():
            z_pos = z_items[positives.to(z_items.device)]
            z_neg = z_items[negatives.to(z_items.device)]
            optimizer = torch.optim.Adam([row], lr=FIT_LR)
            with torch.enable_grad():
                for _ in range(steps):
                    z_u = embed(b, row)
                    diff = model.scores(z_u, z_pos).T - model.scores(z_u, z_neg)  # [P, N]
                    loss = -torch.nn.functional.logsigmoid(diff).mean() + l2 * row.pow(2).sum()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        with torch.no_grad():
            out.append(embed(b, row.detach()))
    return torch.cat(out) if out else z_items[:0]


def fit_rows_linear(
    base: torch.Tensor,
    share: float,
    z_items: torch.Tensor,
    item_lists: Sequence[np.ndarray],
    l2: float,
    steps: int = FIT_STEPS,
    seed: int = 0,
) -> torch.Tensor:
    """:func:`fit_rows` for a dot-product model whose final embedding is linear in the row,
    ``z = base + share * e`` (GCN and LightGCN: a node's layers read only its neighbours), with
    the BPR gradient written out instead of taken by autograd: the same objective and Adam
    steps, two ``[P + N, H]`` products a step.

    .. math::
        \\nabla_e = -\\frac{c}{|P||N|}\\Big(\\sum_i z_i \\sum_j \\sigma(-d_{ij})
        - \\sum_j z_j \\sum_i \\sigma(-d_{ij})\\Big) + 2 \\lambda e,
        \\quad d_{ij} = z_u \\cdot (z_i - z_j)"""
    generator = np.random.default_rng(seed)
    num_items, out = z_items.shape[0], []
    beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults
    for b, items in enumerate(item_lists):
        positives = np.unique(np.asarray(items, dtype=np.int64))
        negatives = _negatives(generator, num_items, positives)
        row = torch.zeros_like(base[b])
        if steps and len(positives) and len(negatives):
            z_pos = z_items[torch.as_tensor(positives, device=z_items.device)]
            z_neg = z_items[torch.as_tensor(negatives, device=z_items.device)]
            m, v = torch.zeros_like(row), torch.zeros_like(row)
            pairs = len(positives) * len(negatives)
            for t in range(1, steps + 1):
                z_u = base[b] + share * row
                d = (z_pos @ z_u)[:, None] - (z_neg @ z_u)[None, :]  # [P, N]
                w = torch.sigmoid(-d)
                grad = -share / pairs * (w.sum(1) @ z_pos - w.sum(0) @ z_neg) + 2 * l2 * row
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = FIT_LR / (1 - beta1**t)
                row -= step * m / ((v / (1 - beta2**t)).sqrt() + eps)
        out.append(base[b] + share * row)
    return torch.stack(out) if out else base[:0]


def _negatives(generator: np.random.Generator, num_items: int, positives: np.ndarray) -> np.ndarray:
    """:data:`FIT_NEGATIVES` distinct items outside ``positives`` (all of them when fewer)."""
    if num_items - len(positives) <= 2 * FIT_NEGATIVES:
        others = np.setdiff1d(np.arange(num_items), positives, assume_unique=True)
        return generator.permutation(others)[:FIT_NEGATIVES]
    drawn = np.unique(generator.integers(0, num_items, 2 * FIT_NEGATIVES + len(positives)))
    drawn = drawn[~np.isin(drawn, positives)]
    return generator.permutation(drawn)[:FIT_NEGATIVES]
