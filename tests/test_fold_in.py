"""Fold-in equals the model's own computation: a user placed from their items gets the final
embedding the model's layers give that user over the training graph with their edges added and
the rest of the graph held at its trained state (the items' layer inputs and degrees), for new
users and for known users who act again; MF and NCF fit an ID row that ranks the user's items
above the others."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnrec.data import CSR
from gnnrec.data.graph_store import GraphStore
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.models.graph_view import GraphView
from gnnrec.serve.fold_in import GraphState, fit_rows, fit_rows_linear, fold_in_users

WIDTH, FEATURES = 4, 3


def _model_config(kind: str, combination: str, aggregation: str, text: bool) -> ModelConfig:
    if kind == "lightgcn":
        return ModelConfig(name="lightgcn", hidden=WIDTH, text_features=False)
    return ModelConfig(
        name=kind,
        hidden=WIDTH,
        layers=2,
        layer_combination=combination,
        aggregation="sum" if kind == "gat" else aggregation,
        text_features=text,
        conv_weights=text,
    )


def _with_row(csr: CSR, row: int, columns: list[int]) -> CSR:
    """``csr`` with row ``row`` reading ``columns`` (the row past the end: appended, with its
    column)."""
    rows = [csr.indices[csr.indptr[r] : csr.indptr[r + 1]].tolist() for r in range(csr.num_rows)]
    if row == len(rows):
        rows.append([])
    rows[row] = sorted(columns)
    indptr = torch.tensor(np.cumsum([0] + [len(r) for r in rows]), dtype=torch.int64)
    indices = torch.tensor([c for r in rows for c in r], dtype=torch.int64)
    return CSR(indptr, indices, len(rows))


def _lightgcn_on_random_pairs(users: int, items: int, draws: int, seed: int):
    """``(pairs, model, view, has_edges, graph state)``: LightGCN on ``draws`` random pairs
    (``user * items + item``, repeats merged)."""
    pairs = np.unique(np.random.default_rng(seed).integers(0, users * items, draws))
    store = GraphStore.bipartite(pairs // items, pairs % items, users, items)
    model = build_model(_model_config("lightgcn", "mean", "sum", False), users, items, 0, 0)
    model.requires_grad_(False)
    view = GraphView.of(store.csr)
    has_edges = store.csr.degree() > 0
    nodes = torch.arange(users + items)
    states = model.layer_states(nodes, None, view, has_edges)
    return pairs, model, view, has_edges, GraphState(states, view.col_scale, users)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["gcn", "gat", "lightgcn"]),
    combination=st.sampled_from(["mean", "last"]),
    aggregation=st.sampled_from(["sum", "mean", "max"]),
    text=st.booleans(),
    known=st.booleans(),
    history=st.lists(st.integers(0, 7), min_size=1, max_size=6),
)
def test_fold_in_equals_the_layers_over_the_graph_with_the_edges_held_fixed(
    seed, kind, combination, aggregation, text, known, history
):
    users, items = 6, 8
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randint(0, 6 * 8, (14,), generator=g).unique()
    train_users, train_items = (pairs // items).numpy(), (pairs % items).numpy()
    store = GraphStore.bipartite(train_users, train_items, users, items)
    config = _model_config(kind, combination, aggregation, text)
    model = build_model(config, users, items, FEATURES, seed).requires_grad_(False)
    n = users + items
    x = torch.randn(n + 1, FEATURES, generator=g) if config.text_features else None
    has_edges = store.csr.degree() > 0
    view = GraphView.of(store.csr)
    graph = GraphState(
        model.layer_states(torch.arange(n), None if x is None else x[:n], view, has_edges),
        view.col_scale,
        users,
    )
    # the reference appends the user as node n, reading its items, which do not read it back
    if known:  # a trained user acts again: node n is a copy of them reading old and new items
        user = int(train_users[0])
        old = store.csr.indices[store.csr.indptr[user] : store.csr.indptr[user + 1]] - users
        item_rows = np.union1d(old.numpy(), history)
        h0 = graph.states[0][user : user + 1]
        if x is not None:
            x[n] = x[user]
    else:  # a new user: no ID row, text features of their own
        user, item_rows = 0, np.unique(history)
        h0 = model.layer0(torch.tensor([0]), None if x is None else x[n:], torch.zeros(1))
        if not torch.is_tensor(h0):  # IDs only
            h0 = torch.zeros(1, WIDTH)
    folded = fold_in_users(model, graph, h0, [item_rows])

    # the reference: the whole model over the graph with node n added, every other row and every
    # column scale as trained (node n's own column scale is never read)
    csr = _with_row(store.csr, n, (item_rows + users).tolist())
    row_scale = torch.cat([view.row_scale, torch.tensor([len(item_rows) ** -0.5])])
    col_scale = torch.cat([view.col_scale, torch.zeros(1)])
    n_id = torch.cat([torch.arange(n), torch.tensor([user])])
    mask = torch.cat([has_edges, torch.tensor([known])])
    expected = model(n_id, x, GraphView(csr, row_scale, col_scale), mask)[n]
    torch.testing.assert_close(folded[0], expected, rtol=1e-5, atol=1e-6)


def test_a_full_recomputation_differs_from_fold_in_only_through_the_items_it_touches():
    """Adding the edges both ways changes the items' degrees and layers: the fold-in is exact for
    the graph held fixed and close to, not equal to, the recomputed one."""
    users, items = 30, 20
    pairs, model, view, has_edges, graph = _lightgcn_on_random_pairs(users, items, 200, seed=0)
    n = users + items
    history = np.array([0, 3, 5])
    folded = fold_in_users(model, graph, torch.zeros(1, WIDTH), [history])[0]
    grown = GraphStore.bipartite(
        np.concatenate([pairs // items, np.full(len(history), users)]),
        np.concatenate([pairs % items, history]),
        users + 1,
        items,
    )
    # the grown graph numbers the new user `users` (before the items): the model needs a table
    # of that size, so compare through a model of users + 1 rows sharing the trained rows
    bigger = build_model(_model_config("lightgcn", "mean", "sum", False), users + 1, items, 0, 0)
    with torch.no_grad():
        table = model.embedding.weight
        bigger.embedding.weight.copy_(
            torch.cat([table[:users], torch.zeros(1, WIDTH), table[users:]])
        )
    mask = grown.csr.degree() > 0
    mask[users] = False
    recomputed = bigger(torch.arange(n + 1), None, GraphView.of(grown.csr), mask)[users]
    gap = (folded - recomputed).norm() / recomputed.norm()
    assert 0 < gap < 0.5
    torch.testing.assert_close(
        torch.nn.functional.cosine_similarity(folded, recomputed, dim=0),
        torch.tensor(1.0),
        atol=0.05,
        rtol=0,
    )


def test_mf_and_ncf_fit_an_id_row_that_ranks_the_users_items_high():
    users, items = 4, 300
    for name in ("mf", "ncf"):
        config = ModelConfig(name=name, hidden=8, layers=0, text_features=False)
        model = build_model(config, users, items, 0, seed=1).requires_grad_(False)
        z_items = model.layer0(torch.arange(users, users + items), None, None)
        liked = np.array([5, 17, 123])

        def embed(b, row):
            return row  # MF/NCF without text: the ID row is the embedding

        z = fit_rows(model, embed, z_items, [liked], l2=1e-4, seed=0)
        assert torch.equal(z, fit_rows(model, embed, z_items, [liked], l2=1e-4, seed=0))
        scores = model.scores(z, z_items)[0]
        ranks = (scores[None, :] > scores[liked][:, None]).sum(1)
        # an untrained NCF's MLP bends scores; the fitted row still lifts the items far above
        # the middle (a zero row ranks them at random, about items / 2)
        assert ranks.float().mean() < 0.25 * items, (name, ranks)
        assert torch.equal(fit_rows(model, embed, z_items, [liked], 1e-4, steps=0), 0 * z)


def test_the_closed_gradient_fit_equals_autograd_through_the_propagation():
    """LightGCN's final embedding is linear in a node's own ID row: the closed-gradient fit
    takes the same Adam steps as autograd through the whole fold-in."""
    users, items = 20, 40
    _, model, view, has_edges, graph = _lightgcn_on_random_pairs(users, items, 150, seed=3)
    n = users + items
    z_items = model(torch.arange(n), None, view, has_edges)[users:]
    lists = [np.array([1, 4, 9]), np.array([30, 2])]
    h0 = torch.zeros(2, WIDTH)

    def embed(b, row):
        return fold_in_users(model, graph, h0[b : b + 1] + row, [lists[b]])

    autograd = fit_rows(model, embed, z_items, lists, l2=1e-3, steps=30, seed=5)
    closed = fit_rows_linear(
        fold_in_users(model, graph, h0, lists), model.own_layer0_share, z_items, lists, 1e-3, 30, 5
    )
    torch.testing.assert_close(closed, autograd, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(closed, fold_in_users(model, graph, h0, lists))  # it moved
