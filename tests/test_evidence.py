"""Evidence is the model's own computation taken apart: for LightGCN and GCNs whose layers are
weighted sums (``sum`` or ``mean``, with or without ``conv_weights``) the terms of a user's
neighbours and their own term add up to the score exactly (fp64), each neighbour's term is
what its paths add up to, and removing a neighbour from the user's row (the rest of the graph
held, as fold-in holds it) lowers the score by that term; GAT's terms are exact given the
attention, which equals PyG's ``GATConv`` attention for the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnrec.data.graph_store import CSR, GraphStore
from gnnrec.data.hetero import GraphSchema, Relation, TypedGraph
from gnnrec.data.textgraph import RelationEdges
from gnnrec.explain.evidence import EXACT, GIVEN_ATTENTION, GRADIENT, method_of, pair_terms
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.models.graph_view import GraphView
from gnnrec.serve.fold_in import GraphState

WIDTH, FEATURES = 4, 3


def _setup(
    seed: int,
    config: ModelConfig,
    users: int = 6,
    items: int = 8,
    draws: int = 20,
    weighted: bool = False,
    entities: bool = False,
):
    """A random graph (with ``tag`` entity nodes that items and users link to when
    ``entities``), the model of ``config`` over it, ``z`` and the fold-in state, in fp64."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, users * items, (draws,), generator=g).unique()
    weight = torch.randint(1, 6, pairs.shape, generator=g).numpy() / 2 if weighted else None
    typed = config.relations == "typed"
    links = [
        torch.randint(0, n, (2, 4), generator=g).numpy() if typed else None for n in (users, items)
    ]
    schema, parts = GraphSchema(), []
    if entities:
        relations = (Relation("has_tag", "item", "tag"), Relation("follows", "user", "tag"))
        schema = GraphSchema((("tag", 3),), relations)
        for relation, count in zip(relations, (items, users)):
            ends = torch.stack([torch.randint(0, count, (5,)), torch.randint(0, 3, (5,))])
            parts.append(RelationEdges(relation, ends.numpy()))
    store = GraphStore.bipartite(
        (pairs // items).numpy(), (pairs % items).numpy(), users, items, *links, weight=weight,
        schema=schema, relation_edges=parts,
    )  # fmt: skip
    store.csr.relation = TypedGraph(store).relation if typed else None
    model = build_model(
        config, users, items, FEATURES, seed,
        num_entities=schema.num_entities, num_relations=schema.num_relations,
    ).double().requires_grad_(False)  # fmt: skip
    n = store.num_nodes
    x = torch.randn(n, FEATURES, generator=g, dtype=torch.float64) if config.text_features else None
    has_edges = store.csr.degree() > 0
    degree = store.csr.degree() if store.csr.values is None else store.csr.row_sums()
    scale = degree.double().rsqrt().nan_to_num(posinf=0.0)  # (square, symmetric)
    view = GraphView(store.csr, scale, scale)
    if typed:  # each relation's scales, in fp64 like the others
        scales = GraphView.of(store.csr)
        view.relation_row_scale = _fp64_scales(store.csr, scales.relation_csrs)
        view.relation_col_scale = view.relation_row_scale  # (square, symmetric)
    nodes = torch.arange(n)
    z = model(nodes, x, view, has_edges)
    states = model.layer_states(nodes, x, view, has_edges)
    state = GraphState(states, view.col_scale, users, relation_col_scale=view.relation_col_scale)
    return store, model, z, state


def _fp64_scales(csr: CSR, parts: list[CSR]) -> torch.Tensor:
    """``[R, N]`` ``d_r^-1/2`` of every node within each relation, in fp64."""
    rows = [(p.degree() if p.values is None else p.row_sums()).double() for p in parts]
    return torch.stack([d.rsqrt().nan_to_num(posinf=0.0) for d in rows])


def _config(kind: str, combination: str, aggregation: str, weights: bool, text: bool, typed=False):
    relations = "typed" if typed else "merged"
    if kind == "lightgcn":
        return ModelConfig(
            name="lightgcn", hidden=WIDTH, layers=3, text_features=False, relations=relations
        )
    return ModelConfig(
        relations=relations,
        name=kind,
        hidden=WIDTH,
        heads=2,
        layers=3,
        layer_combination=combination,
        aggregation="sum" if kind == "gat" else aggregation,
        text_features=text,
        conv_weights=weights,
    )


def _terms(store, model, z, state, user: int, item: int, paths: int = 3):
    csr, users = store.csr, model.num_users
    span = slice(int(csr.indptr[user]), int(csr.indptr[user + 1]))
    row = csr.indices[span].numpy()
    weights = None if csr.values is None else [csr.values[span].numpy()]
    relations = None if csr.relation is None else [csr.relation[span].numpy()]
    targets = [s[user : user + 1] for s in state.states]
    return pair_terms(
        model, state, csr, z[user : user + 1], z[users + item : users + item + 1], [row],
        targets, paths, weights, relations,
    )[0]  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["gcn", "gat", "lightgcn"]),
    combination=st.sampled_from(["mean", "last"]),
    aggregation=st.sampled_from(["sum", "mean"]),
    weights=st.booleans(),
    text=st.booleans(),
    item=st.integers(0, 7),
    weighted=st.booleans(),
    typed=st.booleans(),
    entities=st.booleans(),
)
def test_the_terms_add_up_to_the_score_and_each_term_to_its_paths(
    seed, kind, combination, aggregation, weights, text, item, weighted, typed, entities
):
    config = _config(kind, combination, aggregation, weights, text, typed and kind != "gat")
    store, model, z, state = _setup(
        seed, config, weighted=weighted and kind != "gat", entities=entities
    )
    assert method_of(model) == (GIVEN_ATTENTION if kind == "gat" else EXACT)
    a0 = 0.0 if model.config.layer_combination == "last" else 1.0 / 4
    for user in range(model.num_users):
        t = _terms(store, model, z, state, user, item, paths=8)
        score = float(z[user] @ z[model.num_users + item])
        assert t.score == pytest.approx(score, abs=1e-12)
        assert t.own + t.terms.sum() == pytest.approx(score, abs=1e-10)
        own = a0 * float(state.states[0][user] @ z[model.num_users + item])
        assert t.own == pytest.approx(own, abs=1e-10)  # a_0 h^0_u . z_i, computed apart
        row = store.csr.indices[store.csr.indptr[user] : store.csr.indptr[user + 1]].numpy()
        assert sorted(t.neighbors.tolist()) == sorted(row.tolist())
        for j, term in zip(t.neighbors, t.terms):  # each term is the sum of its paths
            through = [p for p in t.paths if p[0] == j]
            assert sum(p[2] for p in through) == pytest.approx(term, abs=1e-10)
            via = sorted(w for _, w, _ in through if w >= 0)
            neighbours = store.csr.indices[store.csr.indptr[j] : store.csr.indptr[j + 1]]
            assert via == sorted(neighbours.tolist())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["gcn", "lightgcn"]),
    weights=st.booleans(),
    item=st.integers(0, 7),
)
def test_removing_a_neighbour_lowers_the_score_by_its_term(seed, kind, weights, item):
    """The user's row without ``j`` through the model's own fold-in (the rest of the graph held):
    with the row's scale held (the other edges read as before), the score moves by exactly
    ``j``'s term; with it recomputed (``d_u - 1``), by that term and the others' rescaling,
    ``(sqrt(d / (d - 1)) - 1) sum_{k != j} t_k``. (Fold-in's row scale is computed in fp32:
    relative 1e-6.)"""
    store, model, z, state = _setup(seed, _config(kind, "mean", "sum", weights, True))
    users = model.num_users
    for user in range(users):
        t = _terms(store, model, z, state, user, item)
        d = len(t.neighbors)
        z_i, h0 = z[users + item], state.states[0][user : user + 1]
        for k in range(d if d >= 2 else 0):
            kept = torch.as_tensor(np.delete(t.neighbors, k))
            row = CSR(torch.tensor([0, d - 1]), torch.arange(d - 1), d - 1)
            states = [s[kept] for s in state.states]
            ratio = ((d - 1) / d) ** 0.5  # the held scale d^-1/2, carried by the columns
            held = model.fold_in(h0, row, states, state.col_scale[kept] * ratio)[0]
            assert float(held @ z_i) == pytest.approx(t.score - t.terms[k], rel=1e-6, abs=1e-9)
            rescaled = model.fold_in(h0, row, states, state.col_scale[kept])[0]
            others = t.terms.sum() - t.terms[k]
            expected = t.score - t.terms[k] + (1 / ratio - 1) * others
            assert float(rescaled @ z_i) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_max_aggregation_gets_gradient_x_input():
    store, model, z, state = _setup(3, _config("gcn", "mean", "max", True, True))
    assert method_of(model) == GRADIENT
    t = _terms(store, model, z, state, 0, 2)
    assert np.isfinite(t.terms).all() and len(t.terms) == len(t.neighbors)
    assert t.paths == []  # paths need the weighted sums


def test_gat_attention_equals_pyg_gatconv():
    torch_geometric = pytest.importorskip("torch_geometric")
    from gnnrec.models.gat_layer import GATLayer

    g = torch.Generator().manual_seed(0)
    layer = GATLayer(6, 6, heads=2).double()
    store = GraphStore.bipartite(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 0, 1, 2]), 3, 3)
    view = GraphView.of(store.csr)
    h = torch.randn(6, 6, generator=g, dtype=torch.float64)
    out, alpha = layer(h, view, return_attention=True)
    conv = torch_geometric.nn.GATConv(6, 3, heads=2, add_self_loops=False, bias=False).double()
    with torch.no_grad():
        conv.lin.weight.copy_(layer.weight)
        conv.att_src.copy_(layer.att_src.unsqueeze(0))
        conv.att_dst.copy_(layer.att_dst.unsqueeze(0))
    rows = torch.repeat_interleave(torch.arange(6), store.csr.degree())
    edge_index = torch.stack([store.csr.indices, rows])  # source -> target
    expected, (index, weights) = conv(h, edge_index, return_attention_weights=True)
    torch.testing.assert_close(out, expected)
    assert torch.equal(index, edge_index)
    torch.testing.assert_close(alpha, weights)
