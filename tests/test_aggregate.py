"""The aggregation entry point and its CPU backends (the torch reference and torch.sparse.mm),
against dense linear algebra."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import csr_graphs, features

from gnnrec.kernels import aggregate


def _dense(indptr, indices, num_cols, values=None):
    n = indptr.numel() - 1
    rows = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    dense = torch.zeros(n, num_cols, dtype=torch.float64)
    w = torch.ones(indices.numel(), dtype=torch.float64) if values is None else values
    dense.index_put_((rows, indices.long()), w, accumulate=True)
    return dense


CPU_BACKENDS = pytest.mark.parametrize("backend", ["torch", "sparse"])


@CPU_BACKENDS
@given(csr_graphs(), st.integers(1, 37), st.integers(0, 2**16), st.booleans())
def test_sum_and_mean_equal_dense_products(backend, graph, width, seed, weighted):
    indptr, indices, m = graph
    x = features(m, width, seed)
    values = features(indices.numel(), 1, seed + 1).flatten() if weighted else None
    r, c = features(indptr.numel() - 1, 1, seed + 2).flatten(), features(m, 1, seed + 3).flatten()
    dense = _dense(indptr, indices, m, values)
    out = aggregate(
        indptr, indices, x, edge_values=values, row_scale=r, col_scale=c, backend=backend
    )
    assert torch.allclose(out, r[:, None] * (dense @ (c[:, None] * x)), atol=1e-10)
    mean = aggregate(indptr, indices, x, edge_values=values, reduce="mean", backend=backend)
    degree = (indptr[1:] - indptr[:-1]).clamp(min=1).to(torch.float64)
    assert torch.allclose(mean, (dense @ x) / degree[:, None], atol=1e-10)


@CPU_BACKENDS
@given(csr_graphs(), st.integers(1, 9), st.integers(0, 2**16))
def test_max_is_rowwise_max_and_zero_on_empty_rows(backend, graph, width, seed):
    indptr, indices, m = graph
    x = features(m, width, seed)
    out = aggregate(indptr, indices, x, reduce="max", backend=backend)
    for i in range(indptr.numel() - 1):
        neighbors = indices[indptr[i] : indptr[i + 1]].long()
        expected = (
            x[neighbors].max(0).values if neighbors.numel() else torch.zeros(width, dtype=x.dtype)
        )
        assert torch.equal(out[i], expected)


@CPU_BACKENDS
def test_gradients_match_gradcheck(backend):
    indptr = torch.tensor([0, 2, 2, 5])
    indices = torch.tensor([0, 2, 1, 1, 0], dtype=torch.int32)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    for reduce in ("sum", "mean"):
        assert torch.autograd.gradcheck(
            lambda t, r=reduce: aggregate(indptr, indices, t, reduce=r, backend=backend), (x,)
        )


@pytest.mark.parametrize(
    "indptr, indices, message",
    [
        (torch.tensor([0, 2, 1, 3]), torch.tensor([0, 1, 2]), "decreases at row 1"),
        (torch.tensor([0, 1, 3]), torch.tensor([0, 5, 1]), r"indices\[1\] = 5 is outside"),
        (torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1]), "end at the number of indices"),
        (torch.tensor([0, 1], dtype=torch.int32), torch.tensor([0]), "int64"),
        (torch.tensor([0, 1]), torch.tensor([0.0]), "int32 or int64"),
    ],
)
def test_bad_csr_is_explained(indptr, indices, message):
    with pytest.raises(ValueError, match=message):
        aggregate(indptr, indices, torch.zeros(3, 2))


def test_unknown_backend_and_reduce_are_explained():
    indptr, indices = torch.tensor([0, 1]), torch.tensor([0])
    with pytest.raises(ValueError, match="unknown reduce"):
        aggregate(indptr, indices, torch.zeros(1, 2), reduce="min")
    with pytest.raises(ValueError, match="unknown aggregation backend 'cuda'"):
        aggregate(indptr, indices, torch.zeros(1, 2), backend="cuda")


def test_the_sparse_backward_transposes_each_graph_once_and_matches_autograd(monkeypatch):
    import gc
    import warnings

    import gnnrec.kernels.csr as csr

    g = torch.Generator().manual_seed(0)
    indptr = torch.tensor([0, 2, 3, 3, 6])
    indices = torch.tensor([0, 4, 2, 1, 2, 3], dtype=torch.int32)
    x = torch.randn(5, 3, generator=g, requires_grad=True)
    built = []
    transpose = csr.transpose_csr
    monkeypatch.setattr(csr, "transpose_csr", lambda *a: built.append(1) or transpose(*a))
    h = x
    for _ in range(3):  # three layers over one graph
        h = aggregate(indptr, indices, h, backend="sparse", col_scale=torch.rand(5, generator=g))
        h = torch.cat([h, h[:1]])  # back to 5 rows for the next layer
    h.square().sum().backward()
    assert len(built) == 1  # one transpose for the three backward products
    with warnings.catch_warnings():  # the same products through torch.sparse.mm's autograd
        warnings.simplefilter("ignore", UserWarning)
        a = torch.sparse_csr_tensor(indptr, indices.long(), torch.ones(6), (4, 5))
    y = x.detach().requires_grad_()
    grad = torch.randn(4, 3, generator=g)
    torch.sparse.mm(a, y).backward(grad)
    mine = x.detach().requires_grad_()
    aggregate(indptr, indices, mine, backend="sparse").backward(grad)
    assert torch.equal(mine.grad, y.grad)  # bit-identical
    key = id(indices)
    del indices, h, mine  # the graph, and the outputs whose backward would read it
    gc.collect()
    assert key not in csr._TRANSPOSES  # dropped with its graph
