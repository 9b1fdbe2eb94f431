"""Layers (convolution and attention) trimmed to a sampled subgraph's hops (layer ``l`` only
for the nodes within hop ``L - l``) give the seeds the embeddings and gradients of propagating
over the whole subgraph; the ID mask folded into layer 1's column scales gives what masking the
rows gives."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnrec.data import CSR
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.models.gcn import GCNRecommender
from gnnrec.models.graph_view import GraphView
from gnnrec.train.sampler import NeighborSampler


def _graph(n: int, edges: int, seed: int) -> CSR:
    g = torch.Generator().manual_seed(seed)
    src, dst = torch.randint(0, n, (2, edges), generator=g)
    return CSR.from_edges(torch.cat([src, dst]), torch.cat([dst, src]), n, n)


def _outputs_and_grads(model, seeds, x, *inputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The seeds' embeddings ``[seeds, H]`` and the gradients of a loss on them."""
    model.zero_grad()
    x = None if x is None else x.clone().requires_grad_()
    z = model(inputs[0], x, *inputs[1:])[:seeds]
    (z * torch.linspace(-1, 1, z.numel()).view_as(z)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    return z.detach(), grads + ([] if x is None else [x.grad])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    layers=st.integers(0, 3),
    hops=st.integers(1, 4),
    fanout=st.sampled_from([1, 3, -1]),
    combination=st.sampled_from(["mean", "last"]),
    text=st.booleans(),
    aggregation=st.sampled_from(["sum", "mean"]),
    attend=st.booleans(),
)
def test_trimmed_layers_give_the_seeds_what_the_whole_subgraph_gives(
    seed, layers, hops, fanout, combination, text, aggregation, attend
):
    n, width = 40, 4
    torch.manual_seed(seed)
    config = ModelConfig(
        name="mf" if layers == 0 else ("gat" if attend else "gcn"),
        hidden=width,
        layers=layers,
        layer_combination=combination,
        aggregation="sum" if attend else aggregation,
        text_features=text and layers > 0,
        conv_weights=text and layers > 0,
    )
    model = build_model(config, n, 0, feature_dim=3, seed=seed)
    g = torch.Generator().manual_seed(seed)
    sub = NeighborSampler(_graph(n, 60, seed), [fanout] * hops).sample(
        torch.randint(0, n, (5,), generator=g), g
    )
    x = torch.randn(sub.n_id.numel(), 3, generator=g) if config.text_features else None
    mask = torch.rand(sub.n_id.numel(), generator=g) > 0.3
    whole, whole_grads = _outputs_and_grads(
        model, sub.batch_size, x, sub.n_id, GraphView.of(sub.csr), mask
    )
    trimmed, trimmed_grads = _outputs_and_grads(
        model, sub.batch_size, x, sub.n_id, GraphView.of(sub.csr, hops=sub.hops), mask
    )
    assert model(sub.n_id, x, GraphView.of(sub.csr, hops=sub.hops), mask).shape == (
        sub.batch_size,
        width,
    )  # the seeds only
    torch.testing.assert_close(trimmed, whole, rtol=1e-6, atol=1e-7)
    assert len(trimmed_grads) == len(whole_grads)
    for mine, theirs in zip(trimmed_grads, whole_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), layers=st.integers(1, 3), hops=st.booleans())
def test_the_id_mask_in_the_column_scales_equals_masked_rows(seed, layers, hops):
    n = 30
    torch.manual_seed(seed)
    config = ModelConfig(hidden=4, layers=layers, text_features=False)
    model = GCNRecommender(config, n, 0, feature_dim=0)
    g = torch.Generator().manual_seed(seed)
    sub = NeighborSampler(_graph(n, 50, seed), [3] * layers).sample(
        torch.randint(0, n, (4,), generator=g), g
    )
    view = GraphView.of(sub.csr, hops=sub.hops if hops else None)
    mask = torch.rand(sub.n_id.numel(), generator=g) > 0.5
    folded = model(sub.n_id, None, view, mask)  # the mask in layer 1's column scales
    rows = model.propagate(model.layer0(sub.n_id, None, mask), view)  # masked h^0 rows
    assert torch.equal(folded, rows)
    (grad_folded,) = torch.autograd.grad(folded.sum(), model.embedding.weight)
    (grad_rows,) = torch.autograd.grad(rows.sum(), model.embedding.weight)
    assert torch.equal(grad_folded, grad_rows)
    assert torch.equal(grad_folded[sub.n_id[~mask]], torch.zeros(int((~mask).sum()), 4))
