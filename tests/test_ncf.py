"""NCF: ranking every item (the MLP on every pair, in blocks) gives each pair's own score, and
the model is the NeuMF formula."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gnnrec.models.ncf as ncf
from gnnrec.models.config import ModelConfig, build_model


@given(
    users=st.integers(1, 6),
    items=st.integers(1, 9),
    hidden=st.sampled_from([2, 5, 8]),
    block=st.sampled_from([1, 4, 1 << 16]),
    seed=st.integers(0, 2**16),
)
def test_ranking_scores_are_the_pair_scores(users, items, hidden, block, seed):
    model = build_model(ModelConfig(name="ncf", hidden=hidden), users, items, 3, seed=seed)
    g = torch.Generator().manual_seed(seed)
    z = model(torch.arange(users + items), torch.randn(users + items, 3, generator=g), None)
    z_users, z_items = z[:users].detach(), z[users:].detach()
    old = ncf.PAIR_BLOCK
    ncf.PAIR_BLOCK = block  # blocks of one pair, of a few, all at once
    try:
        ranked = model.scores(z_users, z_items)
    finally:
        ncf.PAIR_BLOCK = old
    width = z.shape[1]
    pairs = model.pair_scores(
        z_users[:, None].expand(users, items, width), z_items[None].expand(users, items, width)
    )
    assert ranked.shape == (users, items)
    torch.testing.assert_close(ranked, pairs, rtol=1e-5, atol=1e-6)


def test_a_pair_scores_the_neumf_formula():
    model = build_model(ModelConfig(name="ncf", hidden=4, text_features=False), 2, 3, 0, seed=0)
    z = model(torch.arange(5), None, None)
    u, i = z[0], z[3]
    gmf = (u[:4] * i[:4]) @ model.gmf_weight
    hidden = torch.relu(model.hidden1(torch.cat([u[4:], i[4:]])))
    mlp = torch.relu(model.hidden2(hidden)) @ model.mlp_weight
    assert float(model.pair_scores(u, i)) == pytest.approx(float(gmf + mlp), rel=1e-6)
    assert model.label == "NCF on IDs"


@pytest.mark.parametrize("name", ["gcn", "lightgcn", "mf", "gat", "ncf"])
def test_only_models_that_rank_by_dot_products_say_so(name):
    config = ModelConfig(name=name, hidden=4, text_features=False, layers=0 if name == "mf" else 2)
    model = build_model(config, 3, 4, feature_dim=0, seed=0)
    assert model.scores_are_dot_products == (name != "ncf")
