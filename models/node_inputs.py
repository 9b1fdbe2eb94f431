"""What the GCN, GAT and NCF recommenders share: layer 0 from text features and ID
embeddings, and the rating head.

.. math::
    \\mathbf{h}^0_v = W \\mathbf{x}_v + \\mathbf{b} + m_v \\mathbf{e}_v, \\qquad
    \\hat r_{ui} = \\mu + b_u + b_i + s(u, i)

``m_v`` is 0 for nodes without training edges (their ID rows never get a gradient) and for
ID-dropped nodes during training, so that text alone learns to place a node (cold start);
``s`` is the model's pair score (:meth:`~gnnrec.models.recommender.Recommender.pair_scores`).
"""

from __future__ import annotations

import torch
from torch import nn

from gnnrec.models.config import ModelConfig
from gnnrec.models.recommender import Recommender


class TextAndIDRecommender(Recommender):
    """A :class:`Recommender` with ``project`` (text features -> ``[width]``, or None),
    ``embedding`` (the ``[U + I + K, width]`` ID table, or None; ``K`` entity nodes), and the rating
    head's ``bias`` ``[U + I + K, 1]`` and ``global_mean``; a subclass calls :meth:`_init_inputs`,
    builds its own layers, then :meth:`_init_rating_head` (the order its parameters are drawn
    in)."""

    ID_STD = 0.1  # the ID embeddings start as N(0, ID_STD^2)

    def _init_inputs(
        self,
        config: ModelConfig,
        num_users: int,
        num_items: int,
        feature_dim: int,
        width: int,
        draw_id_table: bool,
        num_entities: int = 0,
    ) -> None:
        """``draw_id_table=False``: the ID table is a placeholder on the meta device (its shape,
        no memory anywhere), for a trainer that draws its own rows of it (sharded tables) or a
        state dict loaded with ``assign=True``; :meth:`Recommender.to_device` leaves it be.
        ``num_entities``: nodes of other types after the items (their rows follow the
        items')."""
        self.config = config
        self.num_users, self.num_items = num_users, num_items
        self.num_entities = num_entities
        n = num_users + num_items + num_entities
        self.project = nn.Linear(feature_dim, width) if config.text_features else None
        self.embedding = None
        if config.id_embeddings and draw_id_table:
            self.embedding = nn.Embedding(n, width)
            nn.init.normal_(self.embedding.weight, std=self.ID_STD)
        elif config.id_embeddings:
            placeholder = torch.empty(n, width, device="meta")
            self.embedding = nn.Embedding(n, width, _weight=placeholder)

    def _init_rating_head(self) -> None:
        n = self.num_users + self.num_items + self.num_entities
        self.bias = nn.Embedding(n, 1)
        nn.init.zeros_(self.bias.weight)
        self.register_buffer("global_mean", torch.zeros(()))

    def layer0(
        self, n_id: torch.Tensor, x: torch.Tensor | None, id_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """``h^0`` ``[n, width]`` of nodes ``n_id`` ``[n]``; ``x`` ``[n, F]``; ``id_mask``
        ``[n]``."""
        h = 0
        if self.project is not None:
            h = self.project(x)
        if self.embedding is not None:
            e = self.embedding(n_id)
            h = h + (e if id_mask is None else e * id_mask.unsqueeze(-1).to(e.dtype))
        return h

    def rating(
        self,
        z_user: torch.Tensor,
        z_item: torch.Tensor,
        user: torch.Tensor,
        item_node: torch.Tensor,
    ) -> torch.Tensor:
        """Predicted ratings ``mu + b_u + b_i + s(u, i)`` for aligned ``[B, H]`` pairs."""
        score = self.pair_scores(z_user, z_item)
        return (
            self.global_mean
            + self.bias(user).squeeze(-1)
            + self.bias(item_node).squeeze(-1)
            + score
        )

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def id_dropout(self) -> float:
        return self.config.id_dropout

    def id_embeddings(self, nodes: torch.Tensor) -> torch.Tensor | None:
        return None if self.embedding is None else self.embedding(nodes)

    def embedding_tables(self) -> list[nn.Embedding]:
        return [t for t in (self.embedding, self.bias) if t is not None]

    def table_std(self, table: nn.Embedding) -> float:
        return self.ID_STD if table is self.embedding else 0.0  # the biases start at 0

    def place_text(self, x: torch.Tensor) -> torch.Tensor:
        if self.project is None:
            raise ValueError(
                "this model uses no text features, so it cannot place a text-only node"
            )
        return self.project(x)

    def configure_objective(self, objective: str, mean_rating: float) -> None:
        if objective != "mse":
            self.bias.weight.requires_grad_(False)  # the rating head's biases: unused by BPR
        else:
            self.global_mean.fill_(mean_rating)
