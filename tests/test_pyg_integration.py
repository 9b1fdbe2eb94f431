"""gnnrec through PyG's own classes: our stores behind ``NeighborLoader``, our sampler behind
``NodeLoader``/``LinkLoader``, our aggregation inside ``GCNConv``/``LGConv``, every graph format
PyG users hold, and our ranking metrics against PyG's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_geometric.typing
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import csr_graphs, features
from torch_geometric import EdgeIndex
from torch_geometric.loader import LinkLoader, NeighborLoader, NodeLoader
from torch_geometric.metrics import (
    LinkPredAveragePopularity,
    LinkPredCoverage,
    LinkPredF1,
    LinkPredHitRatio,
    LinkPredMRR,
    LinkPredNDCG,
    LinkPredPersonalization,
    LinkPredPrecision,
    LinkPredRecall,
)
from torch_geometric.nn import GCN, GCNConv, LGConv

import gnnrec.models.pyg_conv as pyg_conv
from gnnrec.data import CSR, GraphStore
from gnnrec.data.pyg_stores import PyGFeatureStore, PyGGraphStore, as_csr
from gnnrec.models.pyg_conv import KernelGCNConv, KernelLGConv
from gnnrec.train.metrics import full_ranking_metrics
from gnnrec.train.pyg_sampler import PyGNeighborSampler

PYG_CAN_SAMPLE = torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE


def planted_graph(n: int = 240, communities: int = 3, seed: int = 0):
    """A symmetric graph whose edges stay mostly inside planted communities, features that
    hint at the community through noise, and the labels."""
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(n) % communities
    src, dst = torch.randint(0, n, (4000,), generator=g), torch.randint(0, n, (4000,), generator=g)
    keep = (label[src] == label[dst]) | (torch.rand(4000, generator=g) < 0.05)
    s, d = src[keep], dst[keep]
    store = GraphStore.from_csr(CSR.from_edges(torch.cat([s, d]), torch.cat([d, s]), n, n))
    x = torch.nn.functional.one_hot(label, communities).float() * 0.5
    x = x + torch.randn(n, communities, generator=g)
    return store, x, label


def train_on(loader, model, label: torch.Tensor, epochs: int) -> tuple[list[float], float]:
    """Trains ``model`` on the batches of ``loader`` (cross-entropy on each batch's seeds);
    returns the epoch losses and the last epoch's seed accuracy."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(epochs):
        total, correct, seen = 0.0, 0, 0
        for batch in loader:
            out = model(batch.x, batch.edge_index)[: batch.batch_size]
            y = label[batch.n_id[: batch.batch_size]]
            loss = torch.nn.functional.cross_entropy(out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y)
            correct += int((out.argmax(-1) == y).sum())
            seen += len(y)
        losses.append(total / seen)
    return losses, correct / seen


@pytest.mark.skipif(not PYG_CAN_SAMPLE, reason="PyG's NeighborLoader needs pyg-lib or torch-sparse")
def test_neighbor_loader_trains_a_pyg_model_on_our_stores(tmp_path):
    store, x, label = planted_graph()
    saved = GraphStore.load(store.save(tmp_path / "graph"))  # memory-mapped
    np.save(tmp_path / "x.npy", x.numpy())
    features_on_disk = np.load(tmp_path / "x.npy", mmap_mode="r")
    loader = NeighborLoader(
        (PyGFeatureStore(x=features_on_disk), PyGGraphStore(saved)),
        num_neighbors=[6, 6],
        input_nodes=torch.arange(0, store.num_nodes, 2),
        batch_size=40,
        shuffle=True,
    )
    batch = next(iter(loader))
    assert torch.equal(batch.x, x[batch.n_id])  # features read from the memory map
    torch.manual_seed(0)
    model = GCN(3, 16, 2, out_channels=3)
    losses, accuracy = train_on(loader, model, label, epochs=8)
    assert losses[-1] < 0.8 * losses[0]
    assert accuracy > 0.6  # chance: 1/3


def test_node_loader_drives_our_sampler_and_trains_a_pyg_model():
    store, x, label = planted_graph()
    sampler = PyGNeighborSampler(store, [6, 6], seed=0)
    seeds = torch.arange(0, store.num_nodes, 2)
    loader = NodeLoader(
        (PyGFeatureStore(x=x), PyGGraphStore(store)),
        node_sampler=sampler,
        input_nodes=seeds,
        batch_size=40,
    )
    batch = next(iter(loader))
    assert torch.equal(batch.n_id[: batch.batch_size], seeds[:40])  # seeds first
    assert torch.equal(batch.x, x[batch.n_id])
    src, dst = batch.n_id[batch.edge_index[0]], batch.n_id[batch.edge_index[1]]
    assert bool(store.csr.contains(dst, src).all())  # every sampled edge is a graph edge
    torch.manual_seed(0)
    model = torch.nn.ModuleDict({"gcn": GCN(3, 16, 2, out_channels=3)})
    losses, accuracy = train_on(loader, model["gcn"], label, epochs=8)
    assert losses[-1] < 0.8 * losses[0]
    assert accuracy > 0.6


def test_link_loader_drives_our_sampler():
    store, x, _ = planted_graph(n=60)
    sampler = PyGNeighborSampler(store, [4], seed=1)
    edges = torch.stack([store.csr.indices.long(), store.csr.row_ids()])[:, :50]
    loader = LinkLoader(
        (PyGFeatureStore(x=x), PyGGraphStore(store)),
        link_sampler=sampler,
        edge_label_index=(None, edges),
        neg_sampling="binary",
        batch_size=25,
    )
    batch = next(iter(loader))
    positive = batch.edge_label == 1
    assert int(positive.sum()) == 25 and int((~positive).sum()) == 25
    global_pairs = batch.n_id[batch.edge_label_index]
    assert torch.equal(global_pairs[:, positive], edges[:, :25])


@given(csr_graphs(square=True), st.integers(1, 6), st.integers(0, 2**16))
def test_pyg_convs_with_our_aggregation_equal_pyg(graph, width, seed):
    indptr, indices, n = graph
    x = features(n, width, seed, torch.float32).requires_grad_()
    edge_index = torch.stack([indices.long(), CSR(indptr, indices, n).row_ids()])
    sorted_index = EdgeIndex(edge_index, sparse_size=(n, n)).sort_by("col")[0]
    calls = []
    original = pyg_conv.aggregate

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    pyg_conv.aggregate = counted
    try:
        for theirs, ours in (
            (GCNConv(width, 3), KernelGCNConv(width, 3)),
            (LGConv(), KernelLGConv()),
        ):
            ours.load_state_dict(theirs.state_dict())
            expected = theirs(x, edge_index)
            (g_expected,) = torch.autograd.grad(expected.sum(), x)
            got = ours(x, sorted_index)
            (g_got,) = torch.autograd.grad(got.sum(), x)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(g_got, g_expected, atol=1e-5, rtol=1e-5)
    finally:
        pyg_conv.aggregate = original
    assert len(calls) == 2  # the fused path ran through our aggregation


def test_every_graph_format_gives_the_same_csr():
    store, _, _ = planted_graph(n=30)
    csr = store.csr
    edge_index = torch.stack([csr.indices.long(), csr.row_ids()])
    n = csr.num_rows
    adj_t = torch.sparse_coo_tensor(
        torch.stack([csr.row_ids(), csr.indices.long()]), torch.ones(csr.num_edges), (n, n)
    )
    shuffled = edge_index[
        :, torch.randperm(edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    ]
    forms = [
        edge_index,
        shuffled,
        EdgeIndex(shuffled, sparse_size=(n, n)),
        adj_t,
        adj_t.to_sparse_csr(),
        store,
    ]
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        from torch_sparse import SparseTensor

        forms.append(SparseTensor.from_torch_sparse_coo_tensor(adj_t.coalesce()))
    for form in forms:
        got = as_csr(form, num_nodes=n)
        assert torch.equal(got.indptr, csr.indptr), type(form)
        assert torch.equal(got.indices.long(), csr.indices.long()), type(form)


@given(st.integers(2, 30), st.integers(3, 40), st.integers(0, 2**16), st.sampled_from([1, 5]))
def test_ranking_metrics_agree_with_pyg(num_users, num_items, seed, k):
    """Every ranking metric PyG defines equals ours on the same top-k lists (the lists of the
    users with test items); Gini against its pairwise definition."""
    rng = np.random.default_rng(seed)
    scores = torch.from_numpy(rng.standard_normal((num_users, num_items)).astype(np.float32))
    pairs = rng.random((num_users, num_items))
    train = np.nonzero(pairs < 0.2)
    test = np.nonzero(pairs > 0.8)
    evaluated = np.unique(test[0])
    # every list of k items the user has not trained on (masked items have no order)
    assume(len(evaluated) and (pairs[evaluated] >= 0.2).sum(1).min() >= k)
    ours = full_ranking_metrics(
        lambda b, items: scores[b][:, items], train, test, num_users, num_items, ks=(k,)
    )
    masked = scores.clone()
    masked[torch.from_numpy(train[0]), torch.from_numpy(train[1])] = -torch.inf
    top = torch.topk(masked[torch.from_numpy(evaluated)], k, dim=1).indices
    label_index = torch.from_numpy(np.stack([np.searchsorted(evaluated, test[0]), test[1]]))
    popularity = torch.from_numpy(np.bincount(train[1], minlength=num_items))
    theirs = {
        "recall": LinkPredRecall(k),
        "ndcg": LinkPredNDCG(k),
        "precision": LinkPredPrecision(k),
        "hitrate": LinkPredHitRatio(k),
        "mrr": LinkPredMRR(k),
        "f1": LinkPredF1(k),
        "coverage": LinkPredCoverage(k, num_items),
        "popularity": LinkPredAveragePopularity(k, popularity),
        "personalization": LinkPredPersonalization(k, max_src_nodes=None),
    }
    if len(evaluated) < 2:  # no pair of lists: PyG's is 0 / 0, ours 0
        assert ours[f"personalization@{k}"] == 0.0
        del theirs["personalization"]
    for name, metric in theirs.items():
        metric.update(top, label_index)
        assert ours[f"{name}@{k}"] == pytest.approx(float(metric.compute()), abs=1e-6), name
    exposure = np.bincount(top.flatten().numpy(), minlength=num_items).astype(float)
    pairwise = np.abs(exposure[:, None] - exposure[None, :]).sum()
    gini = pairwise / (2 * num_items * exposure.sum())
    assert ours[f"gini@{k}"] == pytest.approx(gini, abs=1e-9)
