"""Node-level mini-batches: the sampler, the GCN layers and the cross-entropy loss together
learn planted node labels from the graph alone."""

from __future__ import annotations

import torch

from gnnrec.data import CSR
from gnnrec.models.config import ModelConfig
from gnnrec.models.gcn import GCNRecommender
from gnnrec.models.graph_view import GraphView
from gnnrec.train.losses import node_label_loss
from gnnrec.train.sampler import NeighborSampler


def test_sampled_gcn_learns_community_labels():
    g = torch.Generator().manual_seed(0)
    n, communities = 120, 3
    label = torch.arange(n) % communities
    src = torch.randint(0, n, (1500,), generator=g)
    dst = torch.randint(0, n, (1500,), generator=g)
    keep = (label[src] == label[dst]) | (torch.rand(1500, generator=g) < 0.05)
    csr = CSR.from_edges(torch.cat([src[keep], dst[keep]]), torch.cat([dst[keep], src[keep]]), n, n)
    torch.manual_seed(0)
    config = ModelConfig(hidden=8, layers=2, text_features=False, id_dropout=0.0)
    model = GCNRecommender(config, n, 0, 0)
    head = torch.nn.Linear(8, communities)
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=0.05)
    sampler = NeighborSampler(csr, [8, 8])
    train_nodes = torch.arange(0, n, 2)  # odd nodes are never seen as labelled seeds
    for _ in range(150):
        seeds = train_nodes[torch.randint(0, len(train_nodes), (32,), generator=g)]
        sub = sampler.sample(seeds, g)
        z = model(sub.n_id, None, GraphView.of(sub.csr))
        loss = node_label_loss(head(z[sub.seed_index]), label[seeds])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        # Odd nodes were never labelled seeds: what places them is what they learned as
        # neighbors of labelled nodes, through the graph.
        full = CSR(csr.indptr, csr.indices, n)
        z = model(torch.arange(n), None, GraphView.of(full))
        predicted = head(z).argmax(1)
    test = torch.arange(1, n, 2)
    accuracy = (predicted[test] == label[test]).float().mean()
    assert accuracy > 0.8
