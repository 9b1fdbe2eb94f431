"""Typed relations (``model.relations = "typed"``): each relation its own normalisation and
transform, equal to PyG's ``RGCNConv`` and to a dense reference, one relation equal to the
untyped layer bit for bit, carried through sampling, trained end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.nn import RGCNConv

from gnnrec.data.graph_store import GraphStore
from gnnrec.data.hetero import NUM_RELATIONS, RATED_BY, GraphSchema, Relation, TypedGraph
from gnnrec.data.textgraph import RelationEdges
from gnnrec.models.config import ModelConfig
from gnnrec.models.gcn_layer import GCNLayer
from gnnrec.models.graph_view import GraphView
from gnnrec.models.relational_layer import RelationalGCNLayer
from gnnrec.train.sampler import NeighborSampler

ENTITY_RELATIONS = (Relation("has_tag", "item", "tag"), Relation("follows", "user", "tag"))


@st.composite
def typed_graphs(draw, weighted: bool | None = None):
    """A user–item store with user and item links (every relation present or not), and, or
    not, a ``tag`` entity type with item -> tag and user -> tag relations (their reverses
    too); its relations set, weights optional."""
    users, items = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    edges = draw(st.integers(1, 20))
    links = [rng.integers(0, n, (2, draw(st.integers(0, 5)))) for n in (users, items)]
    use_weights = draw(st.booleans()) if weighted is None else weighted
    weight = rng.choice([0.5, 1.0, 3.0], edges).astype(np.float32) if use_weights else None
    schema, parts = GraphSchema(), []
    if draw(st.booleans()):  # entity nodes and relations
        tags = draw(st.integers(1, 4))
        relations = ENTITY_RELATIONS[: draw(st.integers(1, 2))]
        schema = GraphSchema((("tag", tags),), relations)
        for relation, count in zip(relations, (items, users)):
            pairs = np.stack([rng.integers(0, count, 4), rng.integers(0, tags, 4)])
            w = rng.choice([0.5, 2.0], 4).astype(np.float32) if use_weights else None
            parts.append(RelationEdges(relation, pairs, w))
    store = GraphStore.bipartite(
        rng.integers(0, users, edges),
        rng.integers(0, items, edges),
        users,
        items,
        *links,
        weight=weight,
        schema=schema,
        relation_edges=parts,
    )
    store.csr.relation = TypedGraph(store).relation
    return store


def dense_relations(store: GraphStore) -> torch.Tensor:
    """``A_r[target, source] = w`` ``[R, N, N]`` float64."""
    n, csr = store.num_nodes, store.csr
    a = torch.zeros(store.schema.num_relations, n, n, dtype=torch.float64)
    w = torch.ones(csr.num_edges) if csr.values is None else csr.values
    a[csr.relation.long(), csr.row_ids(), csr.indices.long()] = w.double()
    return a


def copy_into_rgcn(layer: RelationalGCNLayer, conv: RGCNConv) -> None:
    if layer.basis is not None:
        conv.weight.data = layer.basis.data.transpose(1, 2).contiguous()
        conv.comp.data = layer.coefficients.data.clone()
    else:
        conv.weight.data = layer.weight.data.transpose(1, 2).contiguous()


@given(typed_graphs(weighted=False), st.sampled_from([0, 2]), st.integers(0, 100))
def test_typed_mean_layer_equals_pyg_rgcnconv_forward_and_gradient(store, bases, seed):
    torch.manual_seed(seed)
    R = store.schema.num_relations
    layer = RelationalGCNLayer(4, 3, R, "mean", bases=bases).double()
    conv = RGCNConv(
        4, 3, R, num_bases=bases or None, aggr="mean", root_weight=False, bias=False
    ).double()
    copy_into_rgcn(layer, conv)
    x = torch.randn(store.num_nodes, 4, dtype=torch.float64, requires_grad=True)
    x_pyg = x.detach().clone().requires_grad_(True)
    ours = layer(x, GraphView.of(store.csr))
    theirs = conv(x_pyg, store.to_pyg().edge_index, store.csr.relation.long())
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    theirs.backward(grad)
    torch.testing.assert_close(x.grad, x_pyg.grad, rtol=1e-9, atol=1e-12)
    mine = layer.weight if bases == 0 else layer.basis
    torch.testing.assert_close(mine.grad, conv.weight.grad.transpose(1, 2), rtol=1e-9, atol=1e-12)


@given(typed_graphs(), st.booleans(), st.integers(0, 100))
def test_typed_sum_layer_normalises_each_relation_on_its_own(store, weight, seed):
    torch.manual_seed(seed)
    layer = RelationalGCNLayer(3, 3, store.schema.num_relations, "sum", weight=weight).double()
    x = torch.randn(store.num_nodes, 3, dtype=torch.float64, requires_grad=True)
    ours = layer(x, GraphView.of(store.csr))
    x_ref = x.detach().clone().requires_grad_(True)
    expected = torch.zeros_like(ours)
    for r, a in enumerate(dense_relations(store)):
        d_in = a.sum(1).pow(-0.5).nan_to_num(posinf=0.0)  # degree within the relation
        d_out = a.sum(0).pow(-0.5).nan_to_num(posinf=0.0)
        y = (d_in[:, None] * a * d_out[None, :]) @ x_ref
        expected = expected + (y @ layer.weight[r].T if weight else y)
    torch.testing.assert_close(ours, expected, rtol=1e-6, atol=1e-6)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-6, atol=1e-6)


@given(typed_graphs(), st.sampled_from(["sum", "mean"]))
def test_one_relation_is_the_untyped_layer_bit_for_bit(store, aggregation):
    store.csr.relation = torch.zeros_like(store.csr.relation)
    torch.manual_seed(0)
    plain = GCNLayer(4, 4, aggregation)
    typed = RelationalGCNLayer(4, 4, 1, aggregation)
    typed.weight.data.copy_(plain.weight.data.unsqueeze(0))
    x = torch.randn(store.num_nodes, 4)
    view = GraphView.of(store.csr)
    assert torch.equal(typed(x, view), plain(x, view))


@given(typed_graphs(), st.integers(0, 2**31 - 1))
def test_sampled_subgraphs_carry_their_edges_relations(store, seed):
    sub = NeighborSampler(store.csr, [3, 2]).sample(
        torch.arange(min(2, store.num_nodes)), torch.Generator().manual_seed(seed)
    )
    assert torch.equal(sub.csr.relation, store.csr.relation[sub.e_id])
    view = GraphView.of(sub.csr, hops=sub.hops)
    trimmed = view.layer_view(2, 2)  # the seeds' rows only, their relation scales sliced
    assert trimmed.relation_row_scale.shape[1] == trimmed.csr.num_rows


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": "gat", "relations": "typed"}, "built for gcn and lightgcn"),
        ({"aggregation": "max", "relations": "typed"}, "sum or mean"),
        ({"relation_bases": 2}, "needs relations = 'typed' and conv_weights"),
        ({"relations": "typed", "relation_bases": 2}, "conv_weights"),
    ],
)
def test_typed_settings_that_do_not_fit_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)


@pytest.mark.parametrize("mode", ["full", "sampled"])
def test_a_typed_run_trains_folds_in_and_explains(planted_dir, feature_cache, tmp_path, mode):
    from helpers import planted_config

    from gnnrec.run import train_run
    from gnnrec.serve.handle import load

    friends = tmp_path / "friends.csv"
    friends.write_text("src,dst\n" + "".join(f"u{u},u{(u + 4) % 48}\n" for u in range(48)))
    common = [
        "model.text_features=false",
        "model.conv_weights=true",
        f'data.options.user_edges_path="{friends}"',
        f"train.mode={mode}",
        *(["train.fanouts=[5, 5]"] if mode == "sampled" else []),
    ]
    runs = {}
    for relations in ("merged", "typed"):
        config = planted_config(
            planted_dir,
            feature_cache,
            tmp_path / relations,
            *common,
            f"model.relations={relations}",
        )
        metrics = train_run(config)
        assert metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]
        runs[relations] = load(tmp_path / relations)
    typed = runs["typed"]
    assert [len(c.weight) for c in typed.model.convs] == [NUM_RELATIONS] * 2
    relations = typed._data.graph.csr.relation
    assert set(relations.tolist()) == {0, 1, 2}  # friendships, rated_by, rates
    assert not torch.equal(typed.z, runs["merged"].z)
    space = [i for i in typed.item_ids if i.startswith("i0_")][:5]  # a new user of space stories
    typed.record("someone-new", space)
    ranked = [i for i, _ in typed.recommend(["someone-new"], k=5)["someone-new"]]
    assert not set(ranked) & set(space) and sum(i.startswith("i0_") for i in ranked) >= 3
    for user in (typed.user_ids[0], "someone-new"):  # a trained user (with friends), a new one
        best, score = typed.recommend([user], k=1)[user][0]
        why = typed.explain(user, best, k=3)
        assert why.method == "exact" and why.score == pytest.approx(score, abs=1e-5)
        parts = why.own + sum(t.contribution for t in why.history) + why.rest
        assert parts == pytest.approx(score, abs=1e-4)


@given(
    typed_graphs(),
    st.integers(0, 2**31 - 1),
    st.lists(st.sampled_from([-1, 0, 1, 2]), min_size=8, max_size=8),
)
def test_per_relation_fanouts_take_up_to_k_of_each_relation(store, seed, picks):
    fanouts = {
        r: [picks[2 * r % 8], picks[(2 * r + 1) % 8]] for r in range(store.schema.num_relations)
    }
    sampler = NeighborSampler(store.csr, fanouts)
    seeds = torch.arange(min(3, store.num_nodes))
    sub = sampler.sample(seeds, torch.Generator().manual_seed(seed))
    assert torch.equal(store.csr.row_ids()[sub.e_id], sub.n_id[sub.csr.row_ids()])
    assert torch.equal(sub.csr.relation, store.csr.relation[sub.e_id])
    assert sub.e_id.unique().numel() == sub.e_id.numel()  # without replacement
    degree = torch.zeros(store.schema.num_relations, store.num_nodes, dtype=torch.int64)
    degree.index_put_(
        (store.csr.relation.long(), store.csr.row_ids()),
        torch.ones(store.num_edges, dtype=torch.int64),
        accumulate=True,
    )
    bounds = [0, *sub.hops]
    for hop in range(2):
        for local in range(bounds[hop], bounds[hop + 1]):  # the frontier of this hop
            node = int(sub.n_id[local])
            mine = sub.csr.row_ids() == local
            for r, hops in fanouts.items():
                got = int((mine & (sub.csr.relation == r)).sum())
                k, d = hops[hop], int(degree[r, node])
                assert got == (d if k == -1 else min(d, k)), (hop, node, r)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.relation_fanouts={rates=[2]}"], "has 1 hops and train.fanouts 2"),
        (["train.relation_fanouts={rates=[2, -3]}"], "each >= 0 or -1"),
        (["train.mode=full", "model.relations=typed"], "needs train.mode = 'sampled'"),
        (["model.relations=merged"], "model.relations = 'typed'"),
    ],
)
def test_relation_fanouts_that_do_not_fit_are_refused(overrides, message):
    from gnnrec.config import load_config

    base = ["model.layers=2", "train.fanouts=[3, 3]", "train.mode=sampled", "model.relations=typed"]
    if not any(o.startswith("train.relation_fanouts") for o in overrides):
        base.append("train.relation_fanouts={rates=[2, 2]}")
    with pytest.raises(ValueError, match=message):
        load_config(None, [*base, *overrides])


def sampled_typed_run(planted_dir, feature_cache, run_dir, relation_fanouts: str) -> dict:
    """Trains a typed model on the planted data, sampled with ``relation_fanouts``."""
    from helpers import planted_config

    from gnnrec.run import train_run

    config = planted_config(
        planted_dir,
        feature_cache,
        run_dir,
        "model.text_features=false",
        "model.relations=typed",
        "train.mode=sampled",
        "train.fanouts=[5, 5]",
        f"train.relation_fanouts={relation_fanouts}",
    )
    return train_run(config)


def test_a_sampled_run_with_per_relation_fanouts_trains(planted_dir, feature_cache, tmp_path):
    fanouts = "{rated_by=[8, 0], rates=[-1, 3]}"
    metrics = sampled_typed_run(planted_dir, feature_cache, tmp_path / "run", fanouts)
    assert metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]


def test_per_relation_fanouts_of_a_relation_without_edges_are_refused(
    planted_dir, feature_cache, tmp_path
):
    fanouts = "{user_links=[3, 3]}"  # the planted data has no friendships
    with pytest.raises(ValueError, match=r"names \['user_links'\], which have no edges"):
        sampled_typed_run(planted_dir, feature_cache, tmp_path / "run", fanouts)
    assert not (tmp_path / "run" / "model.pt").exists()


@given(typed_graphs(weighted=False), st.sampled_from(["sum", "mean"]), st.integers(0, 100))
def test_fold_in_of_a_typed_model_gives_a_trained_user_their_embedding(store, aggregation, seed):
    from gnnrec.serve.fold_in import GraphState, fold_in_users

    users = store.num_users
    relation = store.csr.relation.long()
    # a user's friendships and entities are not read by fold-in (it places a user from their
    # items)
    assume = [
        u
        for u in range(users)
        if bool((relation[store.csr.indptr[u] : store.csr.indptr[u + 1]] == RATED_BY).all())
    ]
    config = ModelConfig(
        name="gcn",
        hidden=4,
        layers=2,
        text_features=False,
        conv_weights=True,
        aggregation=aggregation,
        relations="typed",
    )
    from gnnrec.models.config import build_model

    model = build_model(
        config,
        users,
        store.num_items,
        0,
        seed,
        num_entities=store.schema.num_entities,
        num_relations=store.schema.num_relations,
    ).requires_grad_(False)
    view = GraphView.of(store.csr)
    nodes, has_edges = torch.arange(store.num_nodes), store.csr.degree() > 0
    z = model(nodes, None, view, has_edges)
    state = GraphState(
        model.layer_states(nodes, None, view, has_edges),
        view.col_scale,
        users,
        relation_col_scale=view.relation_col_scale,
    )
    for user in assume:
        items = (
            store.csr.indices[store.csr.indptr[user] : store.csr.indptr[user + 1]].numpy() - users
        )
        if aggregation == "mean" and len(items) == 0:
            continue
        folded = fold_in_users(model, state, state.states[0][user : user + 1], [items])
        torch.testing.assert_close(folded[0], z[user], rtol=1e-5, atol=1e-6)


@given(typed_graphs(), st.sampled_from(["sum", "mean"]), st.booleans(), st.sampled_from([0, 2]))
def test_the_segmented_kernel_equals_one_call_per_relation(store, aggregation, weight, bases):
    torch.manual_seed(0)
    bases = bases if weight else 0
    R = store.schema.num_relations
    one = RelationalGCNLayer(3, 3, R, aggregation, weight=weight, bases=bases)
    segmented = RelationalGCNLayer(
        3, 3, R, aggregation, weight=weight, bases=bases, kernel="segmented"
    )
    segmented.load_state_dict(one.state_dict())
    one, segmented = one.double(), segmented.double()
    x = torch.randn(store.num_nodes, 3, dtype=torch.float64, requires_grad=True)
    x_seg = x.detach().clone().requires_grad_(True)
    view = GraphView.of(store.csr)  # (its scales are float32: equal to that precision)
    ours, theirs = segmented(x_seg, view), one(x, view)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    grad = torch.randn_like(ours)
    ours.backward(grad)
    theirs.backward(grad)
    torch.testing.assert_close(x_seg.grad, x.grad, rtol=1e-6, atol=1e-7)
    for a, b in zip(segmented.parameters(), one.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7)
