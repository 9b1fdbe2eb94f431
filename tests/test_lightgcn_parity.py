"""Our LightGCN configuration against PyG's ``torch_geometric.nn.LightGCN``: given the same
embeddings, propagation and scores agree to 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnnrec.config import load_config
from gnnrec.data import GraphStore
from gnnrec.models.config import ModelConfig
from gnnrec.models.gcn import GCNRecommender
from gnnrec.models.graph_view import GraphView
from gnnrec.recipes import lightgcn_paper


def test_propagation_and_scores_match_pyg_lightgcn():
    from torch_geometric.nn import LightGCN

    rng = np.random.default_rng(0)
    num_users, num_items = 30, 45
    users, items = rng.integers(0, num_users, 300), rng.integers(0, num_items, 300)
    store = GraphStore.bipartite(users, items, num_users, num_items)
    config = lightgcn_paper().model
    ours = GCNRecommender(config, num_users, num_items, feature_dim=0)
    theirs = LightGCN(num_users + num_items, embedding_dim=64, num_layers=3)
    theirs.embedding.weight.data.copy_(ours.embedding.weight.data)
    nodes = torch.arange(num_users + num_items)
    z_ours = ours(nodes, None, GraphView.of(store.csr))
    edge_index = store.to_pyg().edge_index
    z_theirs = theirs.get_embedding(edge_index)
    torch.testing.assert_close(z_ours, z_theirs, atol=1e-5, rtol=1e-5)
    u, i = torch.tensor([0, 3, 7]), torch.tensor([5, 1, 44]) + num_users
    scores_ours = (z_ours[u] * z_ours[i]).sum(-1)
    scores_theirs = theirs(edge_index, torch.stack([u, i]))
    torch.testing.assert_close(scores_ours, scores_theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.text_features=true", "lightgcn means id_embeddings only"),
        ("model.layer_combination=last", "lightgcn means"),
    ],
)
def test_lightgcn_name_is_held_to_the_paper(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override], base=lightgcn_paper())


def test_mf_has_no_layers():
    with pytest.raises(ValueError, match="mf means"):
        ModelConfig(name="mf", text_features=False, layers=2)
    assert ModelConfig(name="mf", text_features=False, layers=0).layers == 0
