"""Attention aggregation: the torch backend against the fp64 oracle and every backend against
PyG's ``GATConv`` (forward and every gradient) on awkward graphs and logits, gradcheck, chunking and
determinism."""

from __future__ import annotations

import pytest
import torch
from attention_cases import attention_cases, attention_inputs, forward_and_grads
from hypothesis import given
from hypothesis import strategies as st
from strategies import csr_graphs, features

import gnnrec.kernels.attention as attention_module
from gnnrec.kernels import ATTENTION_BACKENDS, aggregate
from gnnrec.kernels.attention import EdgeAttention, attention_reference

TOLERANCES = {torch.float64: (1e-10, 1e-10), torch.float32: (2e-5, 2e-5)}


@given(case=attention_cases([torch.float64, torch.float32], max_nodes=12, max_edges=40))
def test_the_torch_backend_equals_the_fp64_oracle(case):
    (indptr, indices, _), slope, dtype = case.graph, case.slope, case.dtype
    x, src, dst = case.inputs()

    def ours(x, src, dst):
        attention = EdgeAttention(src, dst, negative_slope=slope)
        return aggregate(indptr, indices, x, reduce="attention", attention=attention)

    def oracle(x, src, dst):
        attention = EdgeAttention(src.double(), dst.double(), negative_slope=slope)
        return attention_reference(indptr, indices, x.double(), attention)

    got, got_grads = forward_and_grads(ours, x, src, dst, case.seed)
    want, want_grads = forward_and_grads(oracle, x, src, dst, case.seed)
    assert got.dtype == dtype and got.shape == (indptr.numel() - 1, case.heads * case.width)
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)
    for mine, theirs, t in zip(got_grads, want_grads, (x, src, dst)):
        assert mine.dtype == t.dtype
        torch.testing.assert_close(mine.double(), theirs.double(), rtol=rtol, atol=atol * 10)
    empty = (indptr[1:] == indptr[:-1]).nonzero().flatten()
    assert torch.equal(got[empty], torch.zeros_like(got[empty]))  # empty rows give 0


def test_gradcheck_in_fp64():
    g = torch.Generator().manual_seed(0)
    indptr = torch.tensor([0, 3, 3, 4, 8])  # an empty row, a single edge, a repeated source
    indices = torch.tensor([0, 2, 2, 1, 3, 0, 1, 2])
    x = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    src = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    dst = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(x, src, dst):
        return aggregate(indptr, indices, x, reduce="attention", attention=EdgeAttention(src, dst))

    assert torch.autograd.gradcheck(fn, (x, src, dst))


@pytest.mark.parametrize("backend", sorted(set(ATTENTION_BACKENDS) - {"torch"}))
@given(
    graph=csr_graphs(max_rows=10, max_cols=10, max_edges=30),
    heads=st.integers(1, 3),
    width=st.integers(1, 4),
    scale=st.sampled_from([1.0, 30.0, -80.0]),  # attention vectors scaled: extreme logits
    dtype=st.sampled_from([torch.float64, torch.float32]),
    seed=st.integers(0, 2**16),
)
def test_pyg_gatconv_with_the_same_weights_gives_the_same_layer(
    backend, graph, heads, width, scale, dtype, seed
):
    """Bipartite, as a sampled layer is: sources ``x_src`` ``[M, 5]``, targets ``[N, 5]``."""
    from torch_geometric.nn import GATConv

    from gnnrec.kernels.csr import edge_rows

    indptr, indices, m = graph
    n = indptr.numel() - 1
    torch.manual_seed(seed)
    conv = GATConv(5, width, heads=heads, add_self_loops=False, bias=False).to(dtype)
    with torch.no_grad():
        conv.att_src.mul_(scale)
        conv.att_dst.mul_(scale)
    x_src, x_dst = features(m, 5, seed, dtype), features(n, 5, seed + 1, dtype)

    def ours():
        h_src, h_dst = conv.lin(x_src), conv.lin(x_dst)  # [m | n, heads * width]
        src = (h_src.view(m, heads, width) * conv.att_src).sum(-1)
        dst = (h_dst.view(n, heads, width) * conv.att_dst).sum(-1)
        attention = EdgeAttention(src, dst, negative_slope=conv.negative_slope)
        return aggregate(
            indptr, indices, h_src, reduce="attention", attention=attention, backend=backend
        )

    def theirs():
        edges = torch.stack([indices.long(), edge_rows(indptr)])
        return conv((x_src, x_dst), edges, size=(m, n))

    results = []
    for fn in (ours, theirs):
        conv.zero_grad()
        out = fn()
        (out * features(n, heads * width, seed + 2, dtype)).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in conv.parameters()]))
    (mine, mine_grads), (pyg, pyg_grads) = results
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(mine, pyg, **tol)
    assert len(mine_grads) == 3  # lin, att_src, att_dst
    for a, b in zip(mine_grads, pyg_grads):
        torch.testing.assert_close(a, b, **tol)


def test_chunked_edge_dots_equal_unchunked_and_runs_are_bit_identical(monkeypatch):
    graph = (torch.tensor([0, 5, 5, 9, 20]), torch.tensor([0, 1, 2, 3, 0] + [1] * 4 + [2] * 11), 4)
    indptr, indices, _ = graph
    x, src, dst = attention_inputs(graph, 2, 3, 5.0, 0, torch.float32)

    def run():
        fn = lambda x, s, d: aggregate(  # noqa: E731
            indptr, indices, x, reduce="attention", attention=EdgeAttention(s, d)
        )
        return forward_and_grads(fn, x, src, dst, 0)

    whole, whole_grads = run()
    again, again_grads = run()
    monkeypatch.setattr(attention_module, "EDGE_CHUNK", 3)
    chunked, chunked_grads = run()
    for other, other_grads in ((again, again_grads), (chunked, chunked_grads)):
        assert torch.equal(other, whole)
        assert all(torch.equal(a, b) for a, b in zip(other_grads, whole_grads))


def test_edge_dropout_drops_whole_edges_and_rescales_the_kept_ones():
    indptr, indices = torch.tensor([0, 4]), torch.tensor([0, 1, 2, 3])
    x = torch.eye(4, dtype=torch.float64)  # y's entries are the edges' weights
    src, dst = torch.zeros(4, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    attention = EdgeAttention(src, dst, dropout=0.5, generator=g)
    y = aggregate(indptr, indices, x.requires_grad_(), reduce="attention", attention=attention)
    kept = y[0] != 0
    assert 0 < int(kept.sum()) < 4  # some edges dropped, some kept (seeded)
    torch.testing.assert_close(y[0][kept], torch.full((int(kept.sum()),), 0.25 / 0.5).double())
    with torch.no_grad():  # no dropout outside training (no autograd)
        y = aggregate(indptr, indices, x, reduce="attention", attention=attention)
    torch.testing.assert_close(y[0], torch.full((4,), 0.25).double())


def test_attention_inputs_are_checked():
    indptr, indices = torch.tensor([0, 2]), torch.tensor([0, 1])
    x = torch.zeros(2, 6)
    with pytest.raises(ValueError, match="attention=EdgeAttention"):
        aggregate(indptr, indices, x, reduce="attention")
    with pytest.raises(ValueError, match="src must have shape"):
        attention = EdgeAttention(torch.zeros(3, 2), torch.zeros(1, 2))
        aggregate(indptr, indices, x, reduce="attention", attention=attention)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        EdgeAttention(torch.zeros(2, 1), torch.zeros(1, 1), dropout=1.0)  # 0 / 0 weights
    with pytest.raises(ValueError, match="multiple of 4 heads"):
        attention = EdgeAttention(torch.zeros(2, 4), torch.zeros(1, 4))
        aggregate(indptr, indices, x, reduce="attention", attention=attention)


@pytest.mark.parametrize("dense_targets", [False, True])
def test_the_gat_layer_with_gatconv_s_weights_is_gatconv(dense_targets):
    from torch_geometric.nn import GATConv

    from gnnrec.data import CSR
    from gnnrec.models.gat_layer import GATLayer
    from gnnrec.models.graph_view import GraphView

    torch.manual_seed(0)
    n, m, in_width, heads, width = 9, 14, 5, 2, 3  # 9 targets, the first 9 of 14 sources
    g = torch.Generator().manual_seed(2)
    source = torch.randint(0, m, (40,), generator=g)
    target = torch.sort(torch.randint(0, n, (40,), generator=g)).values
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(target, minlength=n), 0)
    conv = GATConv(in_width, width, heads=heads, add_self_loops=False, bias=False).double()
    layer = GATLayer(in_width, heads * width, heads).double()
    with torch.no_grad():
        layer.weight.copy_(conv.lin.weight)
        layer.att_src.copy_(conv.att_src[0])
        layer.att_dst.copy_(conv.att_dst[0])
    x = torch.randn(m, in_width, generator=g, dtype=torch.float64, requires_grad=True)
    view = GraphView.of(CSR(indptr, source, m))
    targets = x[:n].detach().clone().requires_grad_() if dense_targets else None
    ours = layer(x, view, targets=targets)
    theirs = conv((x, x[:n] if targets is None else targets), torch.stack([source, target]))
    torch.testing.assert_close(ours, theirs[:n], rtol=1e-10, atol=1e-12)
    weights = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    inputs = [x, *([] if targets is None else [targets])]
    mine = [layer.weight, layer.att_src, layer.att_dst, *inputs]
    pyg = [conv.lin.weight, conv.att_src, conv.att_dst, *inputs]
    mine = torch.autograd.grad((ours * weights).sum(), mine)
    pyg = torch.autograd.grad((theirs[:n] * weights).sum(), pyg)
    for a, b in zip(mine, pyg):
        torch.testing.assert_close(a, b.view_as(a), rtol=1e-10, atol=1e-12)
