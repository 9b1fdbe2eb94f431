"""Edge weights (``data.edge_weight``): read and checked, carried by the graph store, the
sampler and the kernels, normalised by weighted degrees; the layers equal PyG's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.data import DataError
from gnnrec.data.config import DataConfig
from gnnrec.data.datasets import load_dataset
from gnnrec.data.edge_weights import EdgeWeight
from gnnrec.data.graph_store import GraphStore
from gnnrec.models.gcn_layer import GCNLayer
from gnnrec.models.graph_view import GraphView
from gnnrec.train.sampler import NeighborSampler
from gnnrec.train.training_data import training_data


@st.composite
def weighted_bipartite(draw, max_users: int = 6, max_items: int = 7):
    """A random user–item graph with weights (zero weights included) as a GraphStore."""
    users = draw(st.integers(1, max_users))
    items = draw(st.integers(1, max_items))
    edges = draw(st.integers(1, 3 * (users + items)))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    user, item = rng.integers(0, users, edges), rng.integers(0, items, edges)
    weight = rng.choice([0.0, 0.5, 1.0, 2.5, 4.0], edges).astype(np.float32)
    return GraphStore.bipartite(user, item, users, items, weight=weight), (user, item, weight)


def dense(store: GraphStore) -> torch.Tensor:
    """``A[target, source] = w`` ``[N, N]`` float64."""
    n = store.num_nodes
    a = torch.zeros(n, n, dtype=torch.float64)
    a[store.csr.row_ids(), store.csr.indices.long()] = store.csr.values.double()
    return a


@given(weighted_bipartite(), st.sampled_from(["sum", "mean"]), st.booleans())
def test_weighted_layer_equals_pyg_and_dense_forward_and_gradient(graph, aggregation, weight):
    from torch_geometric.nn import GCNConv

    store, _ = graph
    torch.manual_seed(0)
    layer = GCNLayer(5, 5, aggregation, weight=weight).double()
    x = torch.randn(store.num_nodes, 5, dtype=torch.float64, requires_grad=True)
    out = layer(x, GraphView.of(store.csr))
    a = dense(store)
    if aggregation == "sum":
        d = a.sum(1).pow(-0.5).nan_to_num(posinf=0.0)
        propagated = d[:, None] * a * d[None, :]
    else:
        propagated = a / a.sum(1, keepdim=True).clamp(min=1e-300)
    x_ref = x.detach().clone().requires_grad_(True)
    expected = propagated @ x_ref
    if weight:
        expected = expected @ layer.weight.T
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-6, atol=1e-6)
    if aggregation == "sum":  # PyG's GCNConv with edge_weight (no self-loops): the same layer
        conv = GCNConv(5, 5, add_self_loops=False, bias=False).double()
        if weight:
            conv.lin.weight.data.copy_(layer.weight.data)
        else:
            conv.lin.weight.data.copy_(torch.eye(5, dtype=torch.float64))
        pyg = store.to_pyg()
        x_pyg = x.detach().clone().requires_grad_(True)
        theirs = conv(x_pyg, pyg.edge_index, pyg.edge_weight.double())
        torch.testing.assert_close(out, theirs, rtol=1e-6, atol=1e-6)
        theirs.backward(grad)
        torch.testing.assert_close(x.grad, x_pyg.grad, rtol=1e-6, atol=1e-6)


@given(weighted_bipartite())
def test_unit_weights_give_the_unweighted_layer_bit_for_bit(graph):
    store, (user, item, _) = graph
    pairs = np.unique(np.stack([user, item]), axis=1)  # a merged duplicate would weigh 2
    plain = GraphStore.bipartite(pairs[0], pairs[1], store.num_users, store.num_items)
    ones = GraphStore.bipartite(
        pairs[0],
        pairs[1],
        store.num_users,
        store.num_items,
        weight=np.ones(pairs.shape[1], np.float32),
    )
    assert torch.equal(ones.csr.indices, plain.csr.indices)
    torch.manual_seed(0)
    layer = GCNLayer(4, 4)
    x = torch.randn(store.num_nodes, 4)
    assert torch.equal(layer(x, GraphView.of(ones.csr)), layer(x, GraphView.of(plain.csr)))


@given(weighted_bipartite())
def test_store_merges_duplicates_by_summing_and_keeps_both_directions(graph):
    store, (user, item, weight) = graph
    expected: dict[tuple[int, int], float] = {}
    for u, i, w in zip(user, item, weight):
        key = (int(u), int(i) + store.num_users)
        expected[key] = expected.get(key, 0.0) + float(w)
    a = dense(store)
    for (u, i), w in expected.items():
        assert a[u, i] == pytest.approx(w) and a[i, u] == pytest.approx(w)
    assert store.num_edges == 2 * len(expected)


@given(weighted_bipartite(), st.integers(0, 2**31 - 1), st.lists(st.integers(-1, 3), min_size=1))
def test_sampled_subgraphs_carry_exactly_their_edges_weights(graph, seed, fanouts):
    store, _ = graph
    sampler = NeighborSampler(store.csr, fanouts)
    seeds = torch.arange(min(3, store.num_nodes))
    sub = sampler.sample(seeds, torch.Generator().manual_seed(seed))
    rows = store.csr.row_ids()
    targets, sources = sub.n_id[sub.csr.row_ids()], sub.n_id[sub.csr.indices.long()]
    assert torch.equal(rows[sub.e_id], targets)  # e_id is the sampled edge itself
    assert torch.equal(store.csr.indices[sub.e_id].long(), sources)
    assert torch.equal(sub.csr.values, store.csr.values[sub.e_id])
    assert torch.equal(sub.to_pyg().edge_weight, sub.csr.values)


def test_weighted_store_round_trips_through_disk_and_pyg(tmp_path):
    store = GraphStore.bipartite(
        np.array([0, 0, 1]), np.array([0, 1, 1]), 2, 2, weight=np.array([1.0, 2.0, 3.0])
    )
    loaded = GraphStore.load(store.save(tmp_path / "g"))
    assert torch.equal(loaded.csr.values, store.csr.values)
    back = GraphStore.from_pyg(store.to_pyg())
    assert torch.equal(back.csr.values, store.csr.values)
    hetero = store.to_hetero()
    assert hetero["user", "rates", "item"].edge_weight.tolist() == [1.0, 2.0, 3.0]
    assert torch.equal(GraphStore.from_pyg(hetero).csr.values, store.csr.values)
    scales = store.gcn_scales()
    assert scales[0][:2].tolist() == pytest.approx([3.0**-0.5, 3.0**-0.5])  # weighted degree


def test_pyg_edge_weight_is_checked():
    from torch_geometric.data import Data

    data = Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=2)
    data.edge_weight = torch.tensor([1.0, -1.0])
    with pytest.raises(ValueError, match="finite and non-negative"):
        GraphStore.from_pyg(data)
    data.edge_weight = torch.tensor([1.0])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        GraphStore.from_pyg(data)


@pytest.mark.parametrize(
    "text, source, log1p",
    [
        ("none", "none", False),
        ("rating", "rating", False),
        ("log1p(count)", "count", True),
        (" plays ", "plays", False),
        ("log1p(plays)", "plays", True),
    ],
)
def test_edge_weight_forms(text, source, log1p):
    assert EdgeWeight.parse(text) == EdgeWeight(source, log1p)


@pytest.mark.parametrize("text", ["", "log1p()", "log(count)", "log1p(none)", "log1p(log1p(x))"])
def test_bad_edge_weight_forms_are_refused(text):
    with pytest.raises(ValueError, match="edge_weight"):
        DataConfig(edge_weight=text)


def write_table(folder, rows: list[str], header: str = "user_id,item_id,rating,plays"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "interactions.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def table_config(path, edge_weight: str, **options) -> DataConfig:
    return DataConfig(
        dataset="table",
        path=str(path),
        edge_weight=edge_weight,
        test_fraction=0.25,
        valid_fraction=0.0,
        options={"rating_column": "rating", **options},
    )


ROWS = [
    f"u{u},i{i},{1 + (u + i) % 5},{(u * 7 + i) % 11}" for u in range(6) for i in range(u, u + 4)
]


@pytest.mark.parametrize("edge_weight", ["plays", "log1p(plays)", "rating", "log1p(rating)"])
def test_training_graph_weighs_each_training_pair(tmp_path, edge_weight):
    path = write_table(tmp_path / "t", ROWS)
    cfg = table_config(path, edge_weight)
    graph, split = load_dataset(cfg)
    store = training_data(graph, split, cfg.edge_weight_spec).graph
    inter = graph.interactions
    column = {"plays": lambda r: [(u * 7 + i) % 11 for u, i in r]}
    a = dense(store)
    for row in split.train:
        u, i = int(inter.user[row]), int(inter.item[row])
        uid, iid = int(graph.users.ids[u][1:]), int(graph.items.ids[i][1:])
        raw = column["plays"]([(uid, iid)])[0] if "plays" in edge_weight else 1 + (uid + iid) % 5
        expected = np.log1p(np.float32(raw)) if "log1p" in edge_weight else raw
        assert a[u, graph.num_users + i] == pytest.approx(float(expected), rel=1e-6)
    held_out = split.test[0]
    assert a[inter.user[held_out], graph.num_users + inter.item[held_out]] == 0


def test_count_weighs_a_repeated_pair_by_its_rows(tmp_path):
    rows = [*ROWS, "u0,i0,5,1", "u0,i0,2,1", "u1,i1,3,1"]
    cfg = table_config(write_table(tmp_path / "t", rows), "count", timestamp_column="")
    graph, split = load_dataset(cfg)
    inter = graph.interactions
    counts = {
        (graph.users.ids[u], graph.items.ids[i]): w
        for u, i, w in zip(inter.user, inter.item, inter.weight)
    }
    assert counts[("u0", "i0")] == 3 and counts[("u1", "i1")] == 2 and counts[("u2", "i3")] == 1
    assert len(inter) == len(ROWS)  # the repeats collapsed


@pytest.mark.parametrize(
    "bad, message",
    [
        ("u9,i1,4,-2", "plays '-2' is negative"),
        ("u9,i1,4,nan", "plays is 'nan'"),
        ("u9,i1,4,lots", "plays 'lots' is not a number"),
        ("u9,i1,4,", "plays '' is not a number"),
    ],
)
def test_bad_weight_values_name_file_and_line(tmp_path, bad, message):
    path = write_table(tmp_path / "t", [*ROWS[:3], bad, *ROWS[3:]])
    with pytest.raises(DataError) as err:
        load_dataset(table_config(path, "log1p(plays)"))
    assert f"{path}:5: " in str(err.value) and message in str(err.value)


def test_missing_weight_column_is_named(tmp_path):
    path = write_table(tmp_path / "t", ["u0,i0,4", "u1,i1,3"], header="user_id,item_id,rating")
    with pytest.raises(DataError, match="plays"):
        load_dataset(table_config(path, "plays"))


def test_negative_rating_as_weight_names_the_user_and_item(tmp_path):
    rows = [*ROWS, "u3,i9,-1,2"]
    cfg = table_config(write_table(tmp_path / "t", rows), "rating")
    graph, split = load_dataset(cfg)
    with pytest.raises(DataError, match=r"user 'u3', item 'i9'\) has rating -1\.0"):
        training_data(graph, split, cfg.edge_weight_spec)


def test_a_column_the_dataset_lacks_is_refused():
    with pytest.raises(DataError, match="does not have"):
        load_dataset(DataConfig(edge_weight="plays"))  # ml-latest-small: no such column


def test_shared_training_data_keeps_the_weights():
    from gnnrec.distributed.shared_data import share, unshare
    from gnnrec.train.training_data import TrainingData

    store = GraphStore.bipartite(
        np.array([0, 1]), np.array([1, 0]), 2, 2, weight=np.array([2.0, 5.0])
    )
    pairs = (np.zeros(0), np.zeros(0), np.zeros(0))
    back = unshare(share(TrainingData(store, None, pairs, pairs))).graph
    assert torch.equal(back.csr.values, store.csr.values)


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_a_weighted_run_trains_on_the_weights_explains_and_refuses_unknown_weights(
    planted_dir, feature_cache, tmp_path, mode
):
    from helpers import planted_config

    from gnnrec.run import train_run
    from gnnrec.serve.handle import load

    common = ["model.name=lightgcn", "model.text_features=false", f"train.mode={mode}"]
    common += ["train.fanouts=[5, 5]"] if mode == "sampled" else []
    runs = {}
    for weight in ("none", "rating"):
        config = planted_config(
            planted_dir, feature_cache, tmp_path / weight, *common, f"data.edge_weight={weight}"
        )
        metrics = train_run(config)
        assert metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]
        runs[weight] = load(tmp_path / weight)
    weighted, plain = runs["rating"], runs["none"]
    graph = weighted._data.graph
    inter = weighted.graph.interactions
    train = weighted.split.train
    a = dense(graph)
    assert sorted(set(a[a > 0].tolist())) == sorted(set(inter.rating[train].tolist()))
    assert not plain._data.graph.weighted
    assert not torch.equal(weighted.z, plain.z)  # same seed, other weights: other embeddings
    user = weighted.user_ids[0]
    with pytest.raises(ValueError, match="weighted by data.edge_weight = rating: its weight"):
        weighted.record("someone-new", [weighted.item_ids[0]])
    best, score = weighted.recommend([user], k=1)[user][0]
    why = weighted.explain(user, best, k=3)  # the evidence over the weighted edges
    assert why.method == "exact" and why.score == pytest.approx(score, abs=1e-5)
    assert why.own + sum(t.contribution for t in why.history) + why.rest == pytest.approx(
        score, abs=1e-4
    )


@pytest.mark.parametrize("edge_weight", ["rating", "count"])
def test_an_update_weighs_its_new_interactions_like_the_run(
    planted_dir, feature_cache, tmp_path, edge_weight
):
    from helpers import planted_config

    from gnnrec.run import train_run
    from gnnrec.serve.handle import load
    from gnnrec.update import UpdateConfig, update_run

    extra = ("model.name=lightgcn", "model.text_features=false", f"data.edge_weight={edge_weight}")
    train_run(planted_config(planted_dir, feature_cache, tmp_path / "run", *extra))
    table = tmp_path / "new.csv"
    table.write_text("user_id,item_id,rating\nnewbie,i0_1,2\nnewbie,i0_2,5\n")
    update_run(tmp_path / "run", table, UpdateConfig(epochs=1))
    handle = load(tmp_path / "run")
    a = dense(handle._data.graph)
    newbie = list(handle.user_ids).index("newbie")
    items = [list(handle.item_ids).index(i) + handle.num_users for i in ("i0_1", "i0_2")]
    expected = [2.0, 5.0] if edge_weight == "rating" else [1.0, 1.0]
    assert [float(a[newbie, i]) for i in items] == expected


def test_an_update_of_a_run_weighted_by_a_column_is_refused(tmp_path):
    from gnnrec.data.splits import Split
    from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph
    from gnnrec.data.updates import Update, apply_update

    def graph() -> TextGraph:
        inter = Interactions(np.array([0]), np.array([0]), np.ones(1), np.zeros(1), np.ones(1))
        return TextGraph("t", NodeTable(["u"]), NodeTable(["i"]), inter)

    old = graph()
    split = Split("random", np.array([0]), np.zeros(0, np.int64), np.zeros(0, np.int64))
    with pytest.raises(DataError, match="column 'plays'.*update tables do not carry"):
        apply_update(old, split, Update(graph()), EdgeWeight("plays"))
    assert len(old.interactions) == 1


def test_fold_in_of_a_count_weighted_run_keeps_trained_weights_and_weighs_new_pairs(
    planted_dir, feature_cache, tmp_path
):
    from helpers import planted_config

    from gnnrec.run import train_run
    from gnnrec.serve.fold_in import fold_in_users
    from gnnrec.serve.handle import load

    extra = ("model.name=lightgcn", "model.text_features=false", "data.edge_weight=log1p(count)")
    train_run(planted_config(planted_dir, feature_cache, tmp_path / "run", *extra))
    handle = load(tmp_path / "run")
    handle.prepare_fold_in()
    state, csr, U = handle._state, handle._data.graph.csr, handle.num_users
    for user in range(0, U, 7):  # a trained user placed from their trained, weighted edges
        items = csr.indices[csr.indptr[user] : csr.indptr[user + 1]].numpy() - U
        weights = handle._edge_weights(user, items)
        assert np.allclose(weights, csr.values[csr.indptr[user] : csr.indptr[user + 1]].numpy())
        folded = fold_in_users(
            handle.model, state, state.states[0][user : user + 1], [items], [weights]
        )
        torch.testing.assert_close(folded[0], handle.z[user], rtol=1e-5, atol=1e-6)
    new = handle._edge_weights(-1, np.array([0, 1]))
    assert new.tolist() == pytest.approx([np.log1p(1.0)] * 2)
    space = [i for i in handle.item_ids if i.startswith("i0_")][:5]
    handle.record("someone-new", space)
    ranked = [i for i, _ in handle.recommend(["someone-new"], k=5)["someone-new"]]
    assert not set(ranked) & set(space) and sum(i.startswith("i0_") for i in ranked) >= 3


def test_same_type_edges_weigh_their_largest_copy_both_ways():
    links = np.array([[0, 1, 2, 2], [1, 0, 2, 0]])  # 0-1 twice (both ways), a loop, 2-0
    store = GraphStore.bipartite(
        np.array([0]), np.array([0]), 3, 1, user_edges=links, user_edge_weight=[2.0, 5.0, 3.0, 0.5]
    )
    a = dense(store)
    assert a[0, 1] == a[1, 0] == 5.0 and a[2, 2] == 3.0 and a[0, 2] == a[2, 0] == 0.5
    assert a[0, 3] == a[3, 0] == 1.0  # the interaction, unweighted
    back = GraphStore.from_pyg(store.to_hetero())
    assert torch.equal(back.csr.indices, store.csr.indices)
    assert torch.equal(back.csr.values, store.csr.values)


@pytest.mark.parametrize("reader", ["columnar", "rows"])
def test_edge_tables_read_a_weight_column(tmp_path, reader):
    from gnnrec.data.table_rows import ColumnMapping, load_table_rows
    from gnnrec.data.tabular import load_table

    path = write_table(tmp_path / "t", ROWS)
    friends = tmp_path / "friends.csv"
    friends.write_text("src,dst,trust\nu0,u1,0.5\nu2,u3,4\n")
    mapping = ColumnMapping(rating="rating", user_link_weight="trust")
    load = load_table if reader == "columnar" else load_table_rows
    graph = load(path, mapping=mapping, user_edges=friends)
    assert graph.user_edge_weight.tolist() == [0.5, 4.0]
    ids = list(graph.users.ids)
    assert graph.user_edges.T.tolist() == [
        [ids.index("u0"), ids.index("u1")],
        [ids.index("u2"), ids.index("u3")],
    ]
    friends.write_text("src,dst,trust\nu0,u1,0.5\nu2,u3,-4\n")
    with pytest.raises(DataError, match=rf"{friends}:3: trust '-4' is negative"):
        load(path, mapping=mapping, user_edges=friends)


def test_a_run_weighs_friendships_by_a_column(tmp_path):
    path = write_table(tmp_path / "t", ROWS)
    friends = tmp_path / "friends.csv"
    friends.write_text("src,dst,trust\nu0,u1,0.5\nu2,u3,4\n")
    options = {"user_edges_path": str(friends), "user_edges_weight_column": "trust"}
    cfg = table_config(path, "none", **options)
    graph, split = load_dataset(cfg)
    store = training_data(graph, split, cfg.edge_weight_spec).graph
    a, ids = dense(store), list(graph.users.ids)
    assert a[ids.index("u0"), ids.index("u1")] == 0.5 and a[ids.index("u3"), ids.index("u2")] == 4
    assert set(
        a[: graph.num_users, graph.num_users :][
            a[: graph.num_users, graph.num_users :] > 0
        ].tolist()
    ) == {1.0}
