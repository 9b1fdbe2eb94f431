"""The interface between a recommendation model and everything that trains, evaluates or
serves it (the trainer, the loss, evaluation, recommendation, Ray workers). A new model
implements this class and registers itself with :func:`gnnrec.models.config.register_model`.

Node space: users ``0..U-1``, items ``U..U+I-1``. Embeddings ``z`` ``[n, H]`` score pairs by
dot products ``s(u, i) = z_u . z_i`` unless the model says otherwise (:meth:`Recommender.scores`,
:meth:`Recommender.pair_scores`: NCF scores through an MLP).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from gnnrec.data.graph_store import CSR
from gnnrec.models.graph_view import GraphView


class Recommender(nn.Module, ABC):
    num_users: int
    num_items: int

    @property
    @abstractmethod
    def label(self) -> str:
        """What the model is, in words (``"GCN on text + IDs"``)."""

    @property
    @abstractmethod
    def id_dropout(self) -> float:
        """The probability that a node's ID embedding is dropped in a training step (0: none)."""

    @abstractmethod
    def forward(
        self,
        n_id: torch.Tensor,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Final embeddings ``[n, H]`` of the nodes ``n_id`` ``[n]`` of a (sub)graph ``view``
        with features ``x`` ``[n, F]`` (or None); ``id_mask`` ``[n]``: whose ID embedding is
        used."""

    def scores(self, z_users: torch.Tensor, z_items: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, C]`` of every user ``z_users`` ``[B, H]`` with every item ``z_items``
        ``[C, H]``: dot products by default."""
        return z_users @ z_items.T

    def pair_scores(self, z_users: torch.Tensor, z_items: torch.Tensor) -> torch.Tensor:
        """Scores ``[...]`` of aligned pairs ``[..., H]``: the diagonal of :meth:`scores`."""
        return (z_users * z_items).sum(-1)

    @property
    def scores_are_dot_products(self) -> bool:
        """Whether :meth:`scores` is ``z_u . z_i`` (it is unless the model overrides it), so that
        the embeddings alone serve the model's rankings."""
        cls = type(self)
        return cls.scores is Recommender.scores and cls.pair_scores is Recommender.pair_scores

    @property
    def propagates(self) -> bool:
        """Whether a node's embedding is computed from its neighbours' (so that
        :meth:`layer_states` and :meth:`fold_in` place a new node from its edges)."""
        return False

    @property
    def own_layer0_share(self) -> float | None:
        """``c`` in ``z_u = c h^0_u + (terms of u's neighbours only)`` (None: not of that form);
        1 for a model without propagation."""
        return 1.0

    def layer_states(
        self, n_id: torch.Tensor, x: torch.Tensor | None, view: GraphView, id_mask: torch.Tensor
    ) -> list[torch.Tensor]:
        """The inputs ``[h^0, ..., h^{L-1}]`` ``[n, H]`` of each propagation layer."""
        raise NotImplementedError(f"{type(self).__name__} does not propagate over the graph")

    def fold_in(
        self,
        h0: torch.Tensor,
        neighbors: CSR,
        states: list[torch.Tensor],
        col_scale: torch.Tensor,
    ) -> torch.Tensor:
        """Final embeddings ``[B, H]`` of new nodes from their layer 0 ``h0`` and their edges
        into the trained graph (see :meth:`GCNRecommender.fold_in`)."""
        raise NotImplementedError(f"{type(self).__name__} does not propagate over the graph")

    @property
    def device(self) -> torch.device:
        """Where the model computes: the device of its parameters (placeholders aside)."""
        return next(p.device for p in self.parameters() if not p.is_meta)

    def to_device(self, device: torch.device | str) -> Recommender:
        """This model on ``device``, but for placeholders on the meta device (ID tables left
        undrawn for sharded training: a table larger than the device never goes there)."""
        return self._apply(lambda t: t if t.is_meta else t.to(device))

    def embed_in_chunks(
        self,
        x: torch.Tensor | None,
        view: GraphView,
        id_mask: torch.Tensor,
        chunk_nodes: int,
        device: torch.device,
    ) -> torch.Tensor:
        """:meth:`forward` over the whole graph, ``chunk_nodes`` rows at a time on ``device``,
        the result ``[N, H]`` on the host (graphs whose activations do not fit the device)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no chunked inference: set eval.chunk_nodes = 0"
        )

    @abstractmethod
    def rating(
        self,
        z_user: torch.Tensor,
        z_item: torch.Tensor,
        user: torch.Tensor,
        item_node: torch.Tensor,
    ) -> torch.Tensor:
        """Predicted ratings ``[B]`` of aligned pairs (``z`` ``[B, H]``, node ids ``[B]``)."""

    @abstractmethod
    def id_embeddings(self, nodes: torch.Tensor) -> torch.Tensor | None:
        """The ID embedding rows ``[n, H]`` of ``nodes`` the L2 penalty applies to (None: the
        model has none)."""

    def embedding_tables(self) -> list[nn.Embedding]:
        """The model's per-node tables (ID embeddings, rating biases), which the trainer may
        shard and train row-wise (``train.id_optimizer``; none by default)."""
        return []

    def table_std(self, table: nn.Embedding) -> float:
        """The standard deviation a table of :meth:`embedding_tables` starts with (0: zeros),
        for tables the trainer draws itself."""
        return 0.0

    @abstractmethod
    def place_text(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[n, H]`` of new nodes known only by their text features ``x`` ``[n, F]``
        (cold start); ``ValueError`` for a model without text features."""

    @abstractmethod
    def configure_objective(self, objective: str, mean_rating: float) -> None:
        """Prepares the model for ``objective`` (``bpr``: the rating head is not trained;
        ``mse``: its global mean is the training ratings' mean)."""
