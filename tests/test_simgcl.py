"""SimGCL (``train.objective = "bpr+simgcl"``) against the published formulation (Yu et al.,
SIGIR 2022, and its reference code): each layer's output perturbed by ``eps sign(E) *
normalize(U(0, 1))`` before the next layer reads it; the InfoNCE of two perturbed views of
the batch's distinct users and positive items, added to BPR with weight ``lambda``. Trained
in full and sampled mode and with row-wise (shardable) ID tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.data.graph_store import GraphStore
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.models.graph_view import GraphView
from gnnrec.train.link_batches import LinkBatch
from gnnrec.train.losses import bpr_loss, info_nce
from gnnrec.train.objective import Contrast, LinkObjective


@given(st.integers(1, 8), st.integers(1, 6), st.floats(0.05, 2.0), st.integers(0, 100))
def test_info_nce_is_the_papers_formula(n, width, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, width, generator=g, dtype=torch.float64)
    b = torch.randn(n, width, generator=g, dtype=torch.float64)
    cos = lambda x, y: float(x @ y) / (float(x.norm()) * float(y.norm()))  # noqa: E731
    expected = 0.0
    for i in range(n):
        positive = math.exp(cos(a[i], b[i]) / temperature)
        every = sum(math.exp(cos(a[i], b[j]) / temperature) for j in range(n))
        expected -= math.log(positive / every)
    assert float(info_nce(a, b, temperature)) == pytest.approx(expected / n, rel=1e-9)


def _graph(seed: int, users: int = 5, items: int = 6) -> GraphStore:
    rng = np.random.default_rng(seed)
    pairs = np.unique(rng.integers(0, users * items, 18))
    return GraphStore.bipartite(pairs // items, pairs % items, users, items)


@given(st.integers(0, 1000), st.sampled_from([0.05, 0.1, 0.5]))
def test_perturbed_lightgcn_is_the_papers_recursion(seed, eps):
    """``E^l = A_hat E^(l-1) + Delta^l``, ``Delta^l = eps sign(A_hat E^(l-1)) * u / ||u||``
    (``u ~ U(0, 1)`` a row, drawn in the same order), the layers averaged as LightGCN's."""
    store = _graph(seed)
    config = ModelConfig(name="lightgcn", hidden=4, layers=2, text_features=False)
    model = build_model(config, store.num_users, store.num_items, 0, seed).double()
    n = store.num_nodes
    torch.manual_seed(seed)
    ours = model(torch.arange(n), None, GraphView.of(store.csr), noise=eps)
    adjacency = torch.zeros(n, n, dtype=torch.float64)
    adjacency[store.csr.row_ids(), store.csr.indices.long()] = 1.0
    degree = adjacency.sum(1).pow(-0.5).nan_to_num(posinf=0.0)
    a_hat = degree[:, None] * adjacency * degree[None, :]
    torch.manual_seed(seed)
    e = model.embedding.weight.detach()
    layers = [e]
    for _ in range(2):
        e = a_hat @ e
        u = torch.rand_like(e)
        delta = eps * torch.sign(e) * u / u.norm(dim=1, keepdim=True)
        assert torch.allclose(delta.norm(dim=1)[e.abs().sum(1) > 0], torch.tensor(eps).double())
        e = e + delta
        layers.append(e)
    torch.testing.assert_close(ours, torch.stack(layers).mean(0), rtol=1e-6, atol=1e-7)


def test_the_objective_adds_lambda_times_both_infonce_terms():
    """The loss of a batch: BPR on the clean pass plus ``lambda`` times the InfoNCE of two
    noisy passes over the distinct users and over the distinct positive items."""
    store = _graph(3, users=6, items=8)
    config = ModelConfig(name="lightgcn", hidden=8, layers=2, text_features=False)
    model = build_model(config, 6, 8, 0, 0).double()
    contrast = Contrast(weight=0.7, eps=0.2, temperature=0.3)
    objective = LinkObjective(model, "bpr+simgcl", 0.0, contrast)
    users, pos, neg = (
        torch.tensor([0, 1, 1, 4]),
        torch.tensor([2, 3, 2, 7]),
        torch.tensor([[5], [1], [0], [6]]),
    )
    batch = LinkBatch(users, pos, neg, torch.arange(4))
    n, view = store.num_nodes, GraphView.of(store.csr)
    seeds = torch.cat([users, pos + 6, neg.flatten() + 6])
    args = (torch.arange(n), None, view, torch.ones(n, dtype=torch.bool))
    torch.manual_seed(5)
    loss = objective(*args, seeds, batch, None)
    torch.manual_seed(5)
    z = model(*args)
    expected = bpr_loss(
        (z[users] * z[pos + 6]).sum(-1), (z[users] * z[neg.flatten() + 6]).sum(-1)[:, None]
    )
    one, two = (model(*args, noise=0.2) for _ in range(2))
    for nodes in (torch.tensor([0, 1, 4]), torch.tensor([2, 3, 7]) + 6):
        expected = expected + 0.7 * info_nce(one[nodes], two[nodes], 0.3)
    assert float(loss) == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["train.mode=sampled", "train.fanouts=[5, 5]"],
        ["train.id_optimizer=rowwise_adagrad", "train.id_lr=0.1"],
    ],
)
def test_simgcl_trains_full_sampled_and_with_row_wise_tables(
    planted_dir, feature_cache, tmp_path, extra
):
    from helpers import planted_config

    from gnnrec.run import train_run

    config = planted_config(
        planted_dir,
        feature_cache,
        tmp_path / "run",
        "model.name=lightgcn",
        "model.text_features=false",
        "train.objective=bpr+simgcl",
        "train.simgcl_weight=0.05",
        "train.epochs=3",
        *extra,
    )
    metrics = train_run(config)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    assert metrics["recall@20"] > 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["train.objective=bpr+simgcl", "model.name=mf", "model.layers=0"]
            + ["model.text_features=false"],
            "needs model.name",
        ),
        (["train.objective=bpr+simgcl", "model.name=ncf"], "needs model.name"),
        (["train.simgcl_eps=0"], "simgcl_eps must be > 0"),
        (["train.simgcl_temperature=-1"], "simgcl_temperature must be > 0"),
    ],
)
def test_simgcl_settings_that_do_not_fit_are_refused(overrides, message):
    from gnnrec.config import load_config

    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


@pytest.mark.parametrize("name", ["gcn", "gat", "ncf"])
def test_cold_dropout_scores_an_item_as_an_edge_less_item_is_scored(name):
    """``model.cold_dropout``: the rows it replaces are what the model gives an item with no
    edges and no ID row, the embedding a cold item gets at test time."""
    store = GraphStore.bipartite(np.array([0, 1, 1]), np.array([0, 1, 2]), 3, 4)  # item 3 cold
    config = ModelConfig(name=name, hidden=8, layers=2, cold_dropout=0.5)
    model = build_model(config, 3, 4, 5, 0).double().eval()
    x = torch.randn(7, 5, dtype=torch.float64)
    n = store.num_nodes
    z = model(torch.arange(n), x, GraphView.of(store.csr), store.csr.degree() > 0)
    objective = LinkObjective(model, "bpr", 0.0)
    items = torch.tensor([3, 4, 5, 6])  # every item's node, the cold one last
    cold = objective._as_cold(z[items], torch.arange(n), x, items, torch.ones(4, dtype=torch.bool))
    torch.testing.assert_close(cold[3], z[6])  # the edge-less item, as the model places it
    if name == "gcn":  # a_0 (W x + b): its text alone at the layer-0 share of the mean
        torch.testing.assert_close(cold, model.place_text(x[items]) / 3)
