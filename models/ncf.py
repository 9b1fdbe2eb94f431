"""Neural Collaborative Filtering (He et al., 2017), NeuMF: a baseline that scores pairs through
a network instead of a graph.

Every node has ``z_v = W x_v + b + m_v e_v`` ``[2H]`` (text features and/or an ID embedding,
``m_v`` the ID mask as in the GCN's layer 0), split into a GMF half ``g_v`` and an MLP half
``p_v`` ``[H]`` each. A pair scores

.. math::
    s(u, i) = w_g \\cdot (g_u \\odot g_i) + w_m \\cdot \\text{MLP}([p_u; p_i]),
    \\quad \\text{MLP} = \\text{ReLU}(W_2\\, \\text{ReLU}(W_1 [p_u; p_i] + b_1) + b_2)

(``2H -> H -> H/2``). Ranking every item for a user (:meth:`NCFRecommender.scores`) runs the
MLP on every pair: ``W_1 [p_u; p_i] = A p_u + B p_i`` is computed once per user and per item,
and the rest in blocks of at most :data:`PAIR_BLOCK` pairs. The graph is not used.
"""

from __future__ import annotations

import torch
from torch import nn

from gnnrec.models.config import ModelConfig, register_model
from gnnrec.models.graph_view import GraphView
from gnnrec.models.node_inputs import TextAndIDRecommender

PAIR_BLOCK = 1 << 16  # user-item pairs whose hidden layers scores() holds at once


@register_model("ncf", label="NCF")
class NCFRecommender(TextAndIDRecommender):
    def __init__(
        self,
        config: ModelConfig,
        num_users: int,
        num_items: int,
        feature_dim: int,
        draw_id_table: bool = True,
        num_entities: int = 0,
        num_relations: int = 0,
    ):
        """``draw_id_table``, ``num_entities``: see :meth:`TextAndIDRecommender._init_inputs`
        (``num_relations``: unused, NCF reads no graph)."""
        super().__init__()
        h = config.hidden
        self._init_inputs(
            config, num_users, num_items, feature_dim, 2 * h, draw_id_table, num_entities
        )
        self.hidden1 = nn.Linear(2 * h, h)
        self.hidden2 = nn.Linear(h, max(h // 2, 1))
        self.gmf_weight = nn.Parameter(torch.full((h,), 1.0 / h**0.5))
        self.mlp_weight = nn.Parameter(torch.full((max(h // 2, 1),), 1.0 / h**0.5))
        self._init_rating_head()

    def forward(
        self,
        n_id: torch.Tensor,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``z = h^0`` ``[n, 2H]`` of the nodes ``n_id`` (``view`` unused)."""
        return self.layer0(n_id, x, id_mask)

    def embed_in_chunks(
        self,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor,
        chunk_nodes: int,
        device: torch.device,
    ) -> torch.Tensor:
        n = id_mask.numel()
        out = torch.empty(n, 2 * self.config.hidden)
        with torch.no_grad():
            for start in range(0, n, chunk_nodes):
                end = min(start + chunk_nodes, n)
                x_chunk = None if x is None else x[start:end].to(device).float()
                nodes = torch.arange(start, end, device=device)
                out[start:end] = self(nodes, x_chunk, view, id_mask[start:end].to(device)).cpu()
        return out

    def _halves(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.config.hidden
        return z[..., :h], z[..., h:]

    def _mlp_out(self, first: torch.Tensor) -> torch.Tensor:
        """``w_m . ReLU(W_2 ReLU(first) + b_2)`` for the first layer's pre-activations."""
        return torch.relu(self.hidden2(torch.relu(first))) @ self.mlp_weight

    def pair_scores(self, z_users: torch.Tensor, z_items: torch.Tensor) -> torch.Tensor:
        (g_u, p_u), (g_i, p_i) = self._halves(z_users), self._halves(z_items)
        gmf = (g_u * g_i) @ self.gmf_weight
        return gmf + self._mlp_out(self.hidden1(torch.cat([p_u, p_i], -1)))

    def scores(self, z_users: torch.Tensor, z_items: torch.Tensor) -> torch.Tensor:
        (g_u, p_u), (g_i, p_i) = self._halves(z_users), self._halves(z_items)
        h = self.config.hidden
        out = (g_u * self.gmf_weight) @ g_i.T
        w = self.hidden1.weight  # [H, 2H]: A = w[:, :H] for the user, B = w[:, H:] the item
        user_part = p_u @ w[:, :h].T + self.hidden1.bias  # [B, H]
        item_part = p_i @ w[:, h:].T  # [C, H]
        step = max(1, PAIR_BLOCK // max(user_part.shape[0], 1))
        for first in range(0, item_part.shape[0], step):
            block = user_part[:, None, :] + item_part[None, first : first + step, :]
            out[:, first : first + step] += self._mlp_out(block)
        return out
