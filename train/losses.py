"""Training losses.

BPR (Rendle et al., 2009): ``-mean log sigmoid(s(u, i+) - s(u, i-))`` over the batch, with
``[B, K]`` negatives per positive. MSE for ratings. Cross-entropy for node labels. InfoNCE of
two views (SimGCL, Yu et al., 2022): ``-mean_i log(exp(c(a_i, b_i) / t) / sum_j exp(c(a_i,
b_j) / t))`` with ``c`` the cosine similarity.
``l2_penalty``: LightGCN's ``lambda/2 * ||E^0_batch||^2 / B`` on the batch's layer-0 embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """``pos_scores`` ``[B]``, ``neg_scores`` ``[B, K]`` -> scalar."""
    return -F.logsigmoid(pos_scores.unsqueeze(-1) - neg_scores).mean()


def mse_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(predicted, target)


def node_label_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over ``[S, C]`` seed logits and ``[S]`` labels (-1 ignored)."""
    return F.cross_entropy(logits, labels, ignore_index=-1)


def l2_penalty(*embeddings: torch.Tensor, batch_size: int) -> torch.Tensor:
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch_size)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of two views ``a``, ``b`` ``[N, H]`` of the same ``N`` nodes: each node's other
    view is its positive, the other nodes' are its negatives (a cross-entropy over the ``[N,
    N]`` cosine similarities / ``temperature``, whose diagonal is the target)."""
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(a), device=a.device))
