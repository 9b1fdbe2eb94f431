"""The training loss of one link batch as a module, so that DDP sees every use of a parameter
inside ``forward``.

For seeds ``S`` (the batch's users, positive and negative items) in a (sub)graph:
BPR ``-mean_b log sigma(s(u, i+) - s(u, i-))`` over ``[B, K]`` negatives with the model's pair
scores (``z_u . z_i`` for most), or MSE ``mean_b (mu + b_u + b_i + s(u, i) - r_ui)^2``; plus
LightGCN's ``lambda/2 * ||E^0_S||^2 / B`` on the seeds' ID embeddings. ``bpr+simgcl`` adds
SimGCL's contrastive term (Yu et al., SIGIR 2022): two more forward passes, each layer's
output perturbed by noise of norm ``eps`` in the direction of its signs, and the InfoNCE of
the two views of the batch's users and of its positive items, weighted by ``lambda``.
``model.cold_dropout = p``: a share ``p`` of the batch's positive and negative items (``cold``,
drawn by the trainer per slice of the batch) are scored
as edge-less (cold) items are at test time, by the model's own pass over no edges with no ID
row (their text alone; :meth:`LinkObjective._as_cold`), so the text path learns to rank items
on its own. A model without text features has nothing to score them by: it does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gnnrec.data.graph_store import CSR
from gnnrec.models.graph_view import GraphView
from gnnrec.models.recommender import Recommender
from gnnrec.train.link_batches import LinkBatch
from gnnrec.train.losses import bpr_loss, info_nce, l2_penalty, mse_loss


@dataclass(frozen=True)
class Contrast:
    """SimGCL's contrastive term: ``weight`` (lambda), the noise norm ``eps`` and the InfoNCE
    ``temperature`` (``train.simgcl_*``)."""

    weight: float = 0.02
    eps: float = 0.1
    temperature: float = 0.2


class LinkObjective(nn.Module):
    def __init__(
        self, model: Recommender, objective: str, l2: float, contrast: Contrast | None = None
    ):
        """``contrast``: the settings of ``objective = "bpr+simgcl"``."""
        super().__init__()
        self.model, self.objective, self.l2 = model, objective, l2
        self.contrast = contrast or Contrast()

    def forward(
        self,
        n_id: torch.Tensor,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor,
        seed_index: torch.Tensor,
        batch: LinkBatch,
        ratings: torch.Tensor | None,
        cold: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar loss. ``seed_index`` ``[B * (2 + K)]``: the local id in ``n_id`` of each seed
        (``cold`` ``[B * (1 + K)]``: the items to score as cold, positives then negatives)
        in the order users, positives, negatives (row-major)."""
        z = self.model(n_id, x, view, id_mask)
        B, U = len(batch), self.model.num_users
        z_user, z_pos, z_neg = z[seed_index[:B]], z[seed_index[B : 2 * B]], z[seed_index[2 * B :]]
        if cold is not None and x is not None:  # (without text, nothing scores cold items)
            z_pos = self._as_cold(z_pos, n_id, x, seed_index[B : 2 * B], cold[:B])
            z_neg = self._as_cold(z_neg, n_id, x, seed_index[2 * B :], cold[B:])
        if self.objective != "mse":
            pos = self.model.pair_scores(z_user, z_pos)
            z_neg = z_neg.view(B, -1, z.shape[-1])
            neg = self.model.pair_scores(z_user.unsqueeze(1).expand_as(z_neg), z_neg)
            loss = bpr_loss(pos, neg)
            if self.objective == "bpr+simgcl":
                loss = loss + self._contrast(n_id, x, view, id_mask, seed_index[: 2 * B], B)
        else:
            predicted = self.model.rating(z_user, z_pos, batch.users, batch.pos_items + U)
            loss = mse_loss(predicted, ratings)
        if self.l2 > 0:
            seeds = torch.cat([batch.users, batch.pos_items + U, batch.neg_items.flatten() + U])
            rows = self.model.id_embeddings(seeds)
            if rows is not None:
                loss = loss + self.l2 * l2_penalty(rows, batch_size=B)
        return loss

    def _as_cold(
        self,
        z: torch.Tensor,
        n_id: torch.Tensor,
        x: torch.Tensor,
        local: torch.Tensor,
        cold: torch.Tensor,
    ) -> torch.Tensor:
        """``z`` ``[n, H]`` of items (local ids ``local``) with the rows where ``cold`` ``[n]``
        is True replaced by what the model gives an edge-less item with no ID row: its
        forward pass over a graph without edges, ID rows masked (``a_0 (W x_i + b)`` for the
        GCN's layer mean)."""
        drop = torch.nonzero(cold).flatten()
        if drop.numel() == 0:
            return z
        rows = local[drop]
        n = rows.numel()
        indptr = torch.zeros(n + 1, dtype=torch.int64, device=z.device)
        empty = CSR(indptr, torch.zeros(0, dtype=torch.int32, device=z.device), n)
        masked = torch.zeros(n, dtype=torch.bool, device=z.device)
        cold = self.model(n_id[rows], x[rows], GraphView.of(empty), masked)
        return z.index_put((drop,), cold.to(z.dtype))

    def _contrast(
        self,
        n_id: torch.Tensor,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor,
        seeds: torch.Tensor,
        B: int,
    ) -> torch.Tensor:
        """``lambda (InfoNCE(z'_U, z''_U) + InfoNCE(z'_I, z''_I))`` over the batch's distinct
        users ``U`` and positive items ``I`` (``seeds``: their local ids, users first), ``z'``
        and ``z''`` two forward passes with independent noise."""
        c = self.contrast
        views = [self.model(n_id, x, view, id_mask, noise=c.eps) for _ in range(2)]
        loss = 0.0
        for nodes in (torch.unique(seeds[:B]), torch.unique(seeds[B:])):
            loss = loss + info_nce(views[0][nodes], views[1][nodes], c.temperature)
        return c.weight * loss
