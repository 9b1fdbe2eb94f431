"""The GCN recommender with graph-attention layers in place of the convolutions."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from gnnrec.models.config import ModelConfig, register_model
from gnnrec.models.gat_layer import GATLayer
from gnnrec.models.gcn import GCNRecommender


def _check(config: ModelConfig) -> None:
    if config.aggregation != "sum" or config.hidden % config.heads:
        raise ValueError(
            "gat: attention replaces the aggregation (leave aggregation = 'sum') and the "
            f"hidden width ({config.hidden}) must split into heads ({config.heads})"
        )


@register_model("gat", label="GAT", check=_check)
class GATRecommender(GCNRecommender):
    """The same model with graph-attention layers (:class:`~gnnrec.models.gat_layer.GATLayer`,
    ``config.heads`` heads, the projection on with ``conv_weights``) in place of the
    convolutions."""

    ATTENDS: ClassVar[bool] = True

    def make_layer(self, width: int) -> nn.Module:
        return GATLayer(width, width, self.config.heads, weight=self.config.conv_weights)
