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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gnnrec.data.graph_store import CSR
from gnnrec.models.recommender import Recommender

FIT_STEPS = 50  # BPR steps of fit_rows
FIT_NEGATIVES = 256  # items drawn per user as negatives
FIT_LR = 0.05


@dataclass
class GraphState:
    """What fold-in reads of a trained graph: the inputs ``states[l]`` ``[N, H]`` of each
    layer (:meth:`Recommender.layer_states`) and every node's column scale ``[N]``."""

    states: list[torch.Tensor]
    col_scale: torch.Tensor
    num_users: int


def neighbor_rows(item_lists: Sequence[np.ndarray], num_users: int) -> tuple[CSR, torch.Tensor]:
    """``(csr, columns)``: a CSR of one row per list over only the nodes the lists name (each
    list's item rows deduplicated and sorted), ``columns`` ``[M]`` their node ids."""
    lists = [np.unique(np.asarray(items, dtype=np.int64)) for items in item_lists]
    flat = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    columns, local = np.unique(flat, return_inverse=True)
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(items) for items in lists])
    csr = CSR(torch.from_numpy(indptr), torch.from_numpy(local.astype(np.int64)), len(columns))
    return csr, torch.from_numpy(columns + num_users)


def fold_in_users(
    model: Recommender, graph: GraphState, h0: torch.Tensor, item_lists: Sequence[np.ndarray]
) -> torch.Tensor:
    """Final embeddings ``[B, H]`` of ``B`` users with layer 0 ``h0`` ``[B, H]`` whose edges
    go to the item rows ``item_lists[b]``, by the model's own layers (the graph held fixed)."""
    csr, columns = neighbor_rows(item_lists, graph.num_users)
    device = h0.device
    states = [s[columns.to(s.device)].to(device) for s in graph.states]
    col_scale = graph.col_scale[columns.to(graph.col_scale.device)].to(device)
    return model.fold_in(h0, csr.to(device), states, col_scale)


def fit_rows(
    model: Recommender,
    z_items: torch.Tensor,
    h0: torch.Tensor,
    item_lists: Sequence[np.ndarray],
    l2: float,
    seed: int = 0,
) -> torch.Tensor:
    """Embeddings ``[B, H]`` of users with layer 0 ``h0`` ``[B, H]`` (text, or zeros) plus an ID
    row fitted to their items: :data:`FIT_STEPS` Adam steps on

    .. math::
        -\\frac{1}{|P||N|}\\sum_{i \\in P, j \\in N} \\log\\sigma(s(u, i) - s(u, j))
        + \\lambda \\lVert e_u \\rVert^2

    with ``P`` the user's items, ``N`` :data:`FIT_NEGATIVES` other items drawn with ``seed``
    and ``s`` the model's score; items and weights are frozen."""
    generator = np.random.default_rng(seed)
    num_items = z_items.shape[0]
    out = []
    for b, items in enumerate(item_lists):
        positives = torch.as_tensor(np.unique(np.asarray(items, dtype=np.int64)))
        others = np.setdiff1d(np.arange(num_items), positives.numpy(), assume_unique=True)
        count = min(FIT_NEGATIVES, len(others))
        negatives = torch.as_tensor(generator.choice(others, count, replace=False))
        row = torch.zeros_like(h0[b : b + 1], requires_grad=True)
        if positives.numel() and count:
            optimizer = torch.optim.Adam([row], lr=FIT_LR)
            z_pos = z_items[positives.to(z_items.device)]
            z_neg = z_items[negatives.to(z_items.device)]
            for _ in range(FIT_STEPS):
                z_u = h0[b : b + 1] + row
                diff = model.scores(z_u, z_pos).T - model.scores(z_u, z_neg)  # [P, N]
                loss = -torch.nn.functional.logsigmoid(diff).mean() + l2 * row.pow(2).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        out.append((h0[b : b + 1] + row).detach())
    return torch.cat(out) if out else h0[:0]
