"""gnnrec's user–item graphs as PyG heterogeneous graphs: ``HeteroData`` both ways, the typed
stores, and our sampler behind PyG's ``NodeLoader`` / ``LinkLoader`` over
``('user', 'rates', 'item')``, with binary and triplet negatives reproducible from the seed;
PyG's own ``LinkNeighborLoader`` over our stores (where pyg-lib or torch-sparse is
installed: ``make`` installs torch-sparse from ``../shared/wheels`` when that folder exists)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import check_hetero_batch
from torch_geometric.loader import LinkLoader, LinkNeighborLoader, NodeLoader
from torch_geometric.nn import HeteroConv, SAGEConv
from torch_geometric.sampler import NodeSamplerInput
from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE

from gnnrec.data.graph_store import GraphStore
from gnnrec.data.hetero import TypedGraph
from gnnrec.data.pyg_stores import PyGFeatureStore, PyGHeteroGraphStore
from gnnrec.train.pyg_sampler import PyGHeteroNeighborSampler

RATES, RATED_BY = ("user", "rates", "item"), ("item", "rated_by", "user")


def planted_store(users: int = 40, items: int = 30, seed: int = 0, links: bool = True):
    """Users of one of three tastes interact mostly with that taste's items (weighted by a
    rating), with a few friendships and item links."""
    rng = np.random.default_rng(seed)
    user = np.repeat(np.arange(users), 6)
    taste = user % 3
    item = np.where(
        rng.random(len(user)) < 0.85,
        taste + 3 * rng.integers(0, items // 3, len(user)),
        rng.integers(0, items, len(user)),
    )
    rating = rng.integers(1, 6, len(user)).astype(np.float32)
    user_edges = rng.integers(0, users, (2, 15)) if links else None
    item_edges = rng.integers(0, items, (2, 10)) if links else None
    return GraphStore.bipartite(user, item, users, items, user_edges, item_edges, weight=rating)


def test_hetero_data_round_trip_keeps_every_edge_and_weight():
    store = planted_store()
    hetero = store.to_hetero()
    assert set(hetero.edge_types) == {
        RATES,
        RATED_BY,
        ("user", "links", "user"),
        ("item", "links", "item"),
    }
    U = store.num_users
    dense = torch.zeros(store.num_nodes, store.num_nodes)
    dense[store.csr.row_ids(), store.csr.indices.long()] = store.csr.values
    for (src, _, dst), offsets in (
        (RATES, (0, U)),
        (RATED_BY, (U, 0)),
        (("user", "links", "user"), (0, 0)),
        (("item", "links", "item"), (U, U)),
    ):
        e = hetero[src, _, dst].edge_index
        weights = dense[e[1] + offsets[1], e[0] + offsets[0]]
        assert torch.equal(hetero[src, _, dst].edge_weight, weights) and bool((weights > 0).all())
    total = sum(hetero[t].edge_index.shape[1] for t in hetero.edge_types)
    assert total == store.num_edges  # every directed edge once
    back = GraphStore.from_pyg(hetero)
    assert torch.equal(back.csr.indptr, store.csr.indptr)
    assert torch.equal(back.csr.indices, store.csr.indices)
    assert torch.equal(back.csr.values, store.csr.values)


def test_hetero_data_whose_reverse_type_disagrees_is_refused():
    hetero = planted_store(links=False).to_hetero()
    hetero[RATED_BY].edge_index = hetero[RATED_BY].edge_index[:, 1:]
    with pytest.raises(ValueError, match="same pairs reversed"):
        GraphStore.from_pyg(hetero)


def test_typed_graph_store_gives_each_type_as_to_hetero_does():
    store = planted_store()
    hetero, graph_store = store.to_hetero(), PyGHeteroGraphStore(store)
    attrs = {a.edge_type: a for a in graph_store.get_all_edge_attrs()}
    assert set(attrs) == set(hetero.edge_types)
    for edge_type, attr in attrs.items():
        row, colptr = graph_store.get_edge_index(attr)
        dst = torch.repeat_interleave(torch.arange(colptr.numel() - 1), colptr.diff())
        assert torch.equal(torch.stack([row, dst]), hetero[edge_type].edge_index)
        assert attr.size == (hetero[edge_type[0]].num_nodes, hetero[edge_type[2]].num_nodes)


def features(store: GraphStore, width: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "user": torch.randn(store.num_users, width, generator=g),
        "item": torch.randn(store.num_items, width, generator=g),
    }


def stores(store: GraphStore):
    x = features(store)
    feature_store = PyGFeatureStore.hetero({t: {"x": x[t]} for t in x})
    return (feature_store, PyGHeteroGraphStore(store)), x


def test_node_loader_samples_typed_subgraphs_with_the_seeds_first():
    store = planted_store()
    data, x = stores(store)
    seeds = torch.arange(0, store.num_users, 3)
    loader = NodeLoader(
        data,
        node_sampler=PyGHeteroNeighborSampler(store, [4, 3], seed=0),
        input_nodes=("user", seeds),
        batch_size=5,
    )
    batch = next(iter(loader))
    assert torch.equal(batch["user"].n_id[:5], seeds[:5])
    assert batch["user"].num_sampled_nodes[0] == 5 and batch["item"].num_sampled_nodes[0] == 0
    assert batch[RATES].edge_index.shape[1] > 0
    check_hetero_batch(batch, store, x)


def link_loader(
    store, data, seed: int, neg_sampling: str, batch_size: int = 16, sampler: str = "gnnrec"
):
    """A ``LinkLoader`` over ``RATES`` driven by our sampler, or (``sampler="pyg"``) PyG's own
    ``LinkNeighborLoader`` over our stores (its sampler needs pyg-lib or torch-sparse)."""
    edges = store.to_hetero()[RATES].edge_index
    common = dict(
        edge_label_index=(RATES, edges),
        neg_sampling=neg_sampling,
        batch_size=batch_size,
        shuffle=False,
    )
    if sampler == "pyg":
        if not (WITH_PYG_LIB or WITH_TORCH_SPARSE):
            pytest.skip("PyG's own neighbor sampler needs pyg-lib or torch-sparse")
        torch.manual_seed(seed)
        return LinkNeighborLoader(data, num_neighbors=[5, 5], **common), edges
    sampler = PyGHeteroNeighborSampler(store, [5, 5], seed=seed)
    return LinkLoader(data, link_sampler=sampler, **common), edges


def test_link_loader_binary_negatives_are_items_and_repeat_with_the_seed():
    store = planted_store()
    data, x = stores(store)
    loader, edges = link_loader(store, data, 3, "binary")
    batch = next(iter(loader))
    label, index = batch[RATES].edge_label, batch[RATES].edge_label_index
    assert int((label == 1).sum()) == 16 and int((label == 0).sum()) == 16
    pairs = torch.stack([batch["user"].n_id[index[0]], batch["item"].n_id[index[1]]])
    assert torch.equal(pairs[:, label == 1], edges[:, :16])
    negatives = pairs[:, label == 0]
    assert int(negatives[1].max()) < store.num_items and int(negatives[0].max()) < store.num_users
    check_hetero_batch(batch, store, x)
    again = next(iter(link_loader(store, data, 3, "binary")[0]))
    other = next(iter(link_loader(store, data, 4, "binary")[0]))
    ids = lambda b: b["item"].n_id[b[RATES].edge_label_index[1]]  # noqa: E731
    assert torch.equal(ids(again), ids(batch)) and not torch.equal(ids(other), ids(batch))


@pytest.mark.parametrize("sampler", ["gnnrec", "pyg"])
def test_link_loader_trains_a_pyg_model_on_our_stores_with_triplet_negatives(sampler):
    store = planted_store(users=60, items=30)
    data, x = stores(store)
    loader, _ = link_loader(store, data, 0, "triplet", batch_size=32, sampler=sampler)
    first = next(iter(loader))
    check_hetero_batch(first, store, x)
    users, pos, neg = (
        first["user"].src_index,
        first["item"].dst_pos_index,
        first["item"].dst_neg_index,
    )
    assert users.numel() == pos.numel() == neg.numel() == 32
    assert int(first["item"].n_id[neg].max()) < store.num_items
    torch.manual_seed(0)
    embed = torch.nn.ModuleDict(
        {
            t: torch.nn.Embedding(n, 16)
            for t, n in (("user", store.num_users), ("item", store.num_items))
        }
    )
    conv = HeteroConv({RATES: SAGEConv((16, 16), 16), RATED_BY: SAGEConv((16, 16), 16)}, aggr="sum")
    model = torch.nn.ModuleList([embed, conv])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(6):
        total = 0.0
        for batch in loader:
            h = {t: embed[t](batch[t].n_id) for t in ("user", "item")}
            edges = {t: batch[t].edge_index for t in (RATES, RATED_BY)}
            z = conv(h, edges)
            u, p, n = (
                batch["user"].src_index,
                batch["item"].dst_pos_index,
                batch["item"].dst_neg_index,
            )
            margin = (z["user"][u] * (z["item"][p] - z["item"][n])).sum(-1)
            loss = -torch.nn.functional.logsigmoid(margin).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss)
        losses.append(total)
    assert losses[-1] < 0.7 * losses[0]


def test_typed_views_refuse_what_they_cannot_be():
    store = planted_store()
    typed = TypedGraph(store)
    with pytest.raises(ValueError, match="unknown edge type"):
        typed.csc(("user", "buys", "item"))
    untyped = NodeSamplerInput(input_id=None, node=torch.arange(3))
    with pytest.raises(ValueError, match="give the input nodes with their type"):
        PyGHeteroNeighborSampler(store, [2]).sample_from_nodes(untyped)
    with pytest.raises(ValueError, match="user ids must be in"):
        PyGHeteroNeighborSampler(store, [2])._hetero_output(
            {"user": torch.tensor([store.num_users])}
        )
    homogeneous = GraphStore.from_pyg(store.to_pyg())
    with pytest.raises(ValueError, match="user-item store"):
        TypedGraph(homogeneous)
