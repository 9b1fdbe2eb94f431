"""The Triton aggregation kernels (run by the interpreter on the CPU) against fp64 references:
awkward graphs, every dtype and reduction, split heavy rows, and metamorphic properties."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import csr_graphs, features, tile_settings

from gnnrec.kernels import BACKENDS, aggregate, aggregate_reference
from gnnrec.kernels.schedule import ScheduleParams
from gnnrec.kernels.tolerances import assert_close

pytestmark = pytest.mark.skipif("triton" not in BACKENDS, reason="triton is not installed")

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# gradcheck runs two forward passes per input element: a quarter of the profile's examples.
GRADCHECK_EXAMPLES = max(5, settings.default.max_examples // 4)


def _inputs(graph, width, seed, dtype, weighted, scaled, strided):
    indptr, indices, m = graph
    n = indptr.numel() - 1
    x = features(m, width * (2 if strided else 1), seed).to(dtype)
    x = x[:, ::2] if strided else x  # a non-contiguous view
    values = features(indices.numel(), 1, seed + 1).flatten().to(dtype) if weighted else None
    r = features(n, 1, seed + 2).flatten().abs().float() if scaled else None
    c = features(m, 1, seed + 3).flatten().abs().float() if scaled else None
    return x, values, r, c


def _reference(indptr, indices, x, values, reduce, r, c, requires_grad=False):
    """fp64 reference on the same (already rounded) inputs."""
    xd = x.detach().double().requires_grad_(requires_grad)
    vd = None if values is None else values.detach().double().requires_grad_(requires_grad)
    out = aggregate_reference(
        indptr,
        indices,
        xd,
        edge_values=vd,
        reduce=reduce,
        row_scale=None if r is None else r.double(),
        col_scale=None if c is None else c.double(),
    )
    return out, xd, vd


@given(
    csr_graphs(max_edges=48),
    st.integers(1, 40),
    st.integers(0, 2**16),
    st.sampled_from(DTYPES),
    st.sampled_from(["sum", "mean", "max"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    tile_settings(),
)
@example(  # one hub row split into chunks, fp32, sum: the GCN's own path
    (torch.tensor([0, 0, 9, 10]), torch.tensor([1] * 9 + [0], dtype=torch.int32), 3),
    5,
    0,
    torch.float32,
    "sum",
    True,
    True,
    False,
    {"params": ScheduleParams(2, 2, 3), "block_e": 2, "block_f": 2},
)
def test_forward_and_gradients_match_the_reference(
    graph, width, seed, dtype, reduce, weighted, scaled, strided, tiles
):
    indptr, indices, _ = graph
    x, values, r, c = _inputs(graph, width, seed, dtype, weighted, scaled, strided)
    x.requires_grad_(True)
    if values is not None:
        values.requires_grad_(True)
    out = aggregate(
        indptr,
        indices,
        x,
        edge_values=values,
        reduce=reduce,
        row_scale=r,
        col_scale=c,
        backend="triton",
        **tiles,
    )
    expected, xd, vd = _reference(indptr, indices, x, values, reduce, r, c, requires_grad=True)
    assert out.dtype == dtype and out.shape == expected.shape
    assert_close(out, expected, dtype)
    grad = features(*out.shape, seed + 4).to(dtype)
    got = torch.autograd.grad(out, [t for t in (x, values) if t is not None], grad)
    want = torch.autograd.grad(expected, [t for t in (xd, vd) if t is not None], grad.double())
    for g, w in zip(got, want):
        assert g.dtype == dtype
        # Gradients sum over more terms than outputs; scale the tolerance with the row count.
        scale = max(1.0, float(w.abs().max())) if w.numel() else 1.0
        assert_close(g / scale, w / scale, dtype)


@given(
    csr_graphs(max_rows=5, max_cols=5, max_edges=10),
    st.integers(1, 3),
    st.sampled_from(["sum", "mean", "max"]),
    st.integers(0, 2**16),
    tile_settings(),
)
@settings(max_examples=GRADCHECK_EXAMPLES)
@pytest.mark.slow
def test_gradcheck_in_fp64(graph, width, reduce, seed, tiles):
    indptr, indices, m = graph
    x = features(m, width, seed).requires_grad_(True)
    values = features(indices.numel(), 1, seed + 1).flatten().requires_grad_(True)
    r = features(indptr.numel() - 1, 1, seed + 2).flatten()

    def fn(x, values):
        return aggregate(
            indptr,
            indices,
            x,
            edge_values=values,
            reduce=reduce,
            row_scale=r,
            backend="triton",
            **tiles,
        )

    assert torch.autograd.gradcheck(fn, (x, values), atol=1e-8, nondet_tol=0.0)


@given(csr_graphs(max_edges=40), st.integers(1, 12), st.integers(0, 2**16), tile_settings())
def test_linearity(graph, width, seed, tiles):
    indptr, indices, m = graph
    a, b = features(m, width, seed), features(m, width, seed + 1)

    def agg(x):
        return aggregate(indptr, indices, x, reduce="sum", backend="triton", **tiles)

    torch.testing.assert_close(agg(2.5 * a - 0.5 * b), 2.5 * agg(a) - 0.5 * agg(b))


@given(
    csr_graphs(square=True, max_edges=40),
    st.integers(1, 9),
    st.integers(0, 2**16),
    st.sampled_from(["sum", "mean", "max"]),
)
def test_relabelling_nodes_permutes_the_output(graph, width, seed, reduce):
    indptr, indices, n = graph
    x = features(n, width, seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # new id of node v
    rows = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    new_rows, new_cols = perm[rows], perm[indices.long()]
    order = torch.argsort(new_rows * n + new_cols, stable=True)
    new_indptr = torch.zeros(n + 1, dtype=torch.int64)
    new_indptr[1:] = torch.cumsum(torch.bincount(new_rows, minlength=n), 0)
    new_x = torch.empty_like(x)
    new_x[perm] = x
    out = aggregate(indptr, indices, x, reduce=reduce, backend="triton")
    relabelled = aggregate(
        new_indptr, new_cols[order].to(indices.dtype), new_x, reduce=reduce, backend="triton"
    )
    torch.testing.assert_close(relabelled[perm], out)


@given(csr_graphs(max_edges=40), st.integers(1, 9), st.integers(0, 2**16))
def test_duplicate_edges_equal_summed_weights(graph, width, seed):
    indptr, indices, m = graph
    n = indptr.numel() - 1
    x = features(m, width, seed)
    values = features(indices.numel(), 1, seed + 1).flatten()
    rows = torch.repeat_interleave(torch.arange(n), indptr[1:] - indptr[:-1])
    keys, inverse = torch.unique(rows * m + indices.long(), return_inverse=True)
    summed = torch.zeros(keys.numel(), dtype=values.dtype).index_add_(0, inverse, values)
    coalesced_indptr = torch.zeros(n + 1, dtype=torch.int64)
    coalesced_indptr[1:] = torch.cumsum(torch.bincount(keys // m, minlength=n), 0)
    with_duplicates = aggregate(indptr, indices, x, edge_values=values, backend="triton")
    coalesced = aggregate(
        coalesced_indptr, (keys % m).to(indices.dtype), x, edge_values=summed, backend="triton"
    )
    torch.testing.assert_close(with_duplicates, coalesced)


@given(
    csr_graphs(max_edges=48),
    st.integers(1, 20),
    st.integers(0, 2**16),
    st.sampled_from(["sum", "mean", "max"]),
    tile_settings(),
)
def test_split_rows_equal_unsplit_rows(graph, width, seed, reduce, tiles):
    indptr, indices, m = graph
    x = features(m, width, seed).float()
    split = aggregate(indptr, indices, x, reduce=reduce, backend="triton", **tiles)
    whole_tiles = {**tiles, "params": ScheduleParams(heavy_threshold=10**6)}
    whole = aggregate(indptr, indices, x, reduce=reduce, backend="triton", **whole_tiles)
    torch.testing.assert_close(split, whole, rtol=1e-6, atol=1e-6)


@given(
    csr_graphs(max_edges=40),
    st.integers(1, 20),
    st.integers(0, 2**16),
    st.sampled_from(["sum", "mean", "max"]),
)
def test_agrees_with_torch_sparse(graph, width, seed, reduce):
    torch_sparse = pytest.importorskip("torch_sparse")
    indptr, indices, m = graph
    x = features(m, width, seed)
    adj = torch_sparse.SparseTensor(
        rowptr=indptr, col=indices.long(), sparse_sizes=(indptr.numel() - 1, m)
    )
    theirs = torch_sparse.matmul(adj, x, reduce=reduce)
    ours = aggregate(indptr, indices, x, reduce=reduce, backend="triton")
    torch.testing.assert_close(ours, theirs)


def test_zero_edges_and_wide_features():
    indptr = torch.zeros(5, dtype=torch.int64)
    x = torch.randn(3, 300)
    for reduce in ("sum", "mean", "max"):
        out = aggregate(
            indptr, torch.zeros(0, dtype=torch.int32), x, reduce=reduce, backend="triton"
        )
        assert out.shape == (4, 300) and not out.any()


def test_scales_that_need_gradients_are_refused():
    indptr, indices = torch.tensor([0, 1]), torch.tensor([0])
    with pytest.raises(ValueError, match="row_scale is treated as a constant"):
        aggregate(
            indptr,
            indices,
            torch.ones(1, 2),
            row_scale=torch.ones(1, requires_grad=True),
            backend="triton",
        )


def test_max_gradient_goes_to_the_first_tied_edge():
    """Row 0's two sources tie on feature 0 (equal values, common among bf16 messages): the
    kernel routes the gradient to the first edge, and so does the tie-aware reference the
    device check uses; autograd through the plain reference splits it between them."""
    from gnnrec.kernels.reference import max_gradients_first_tie

    indptr = torch.tensor([0, 2, 3], dtype=torch.int64)
    indices = torch.tensor([0, 1, 2], dtype=torch.int32)
    x = torch.tensor([[2.0, 3.0], [2.0, -1.0], [1.0, 0.5]], requires_grad=True)
    grad = torch.ones(2, 2)
    out = aggregate(indptr, indices, x, reduce="max", backend="triton")
    (got,) = torch.autograd.grad(out, x, grad)
    want, _ = max_gradients_first_tie(indptr, indices, x.detach().double(), None, grad)
    assert want.tolist() == [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    torch.testing.assert_close(got.double(), want)
    xd = x.detach().double().requires_grad_(True)
    (split,) = torch.autograd.grad(
        aggregate_reference(indptr, indices, xd, reduce="max"), xd, grad.double()
    )
    assert split.tolist() == [[0.5, 1.0], [0.5, 0.0], [1.0, 1.0]]


@given(csr_graphs(max_rows=12, max_edges=40), st.integers(1, 5), st.integers(0, 2**16))
def test_first_tie_gradients_equal_autograd_without_ties(graph, width, seed):
    from gnnrec.kernels.reference import max_gradients_first_tie

    indptr, indices, m = graph
    x = features(m, width, seed).requires_grad_(True)  # fp64 normal: no ties
    values = features(indices.numel(), 1, seed + 1).flatten().requires_grad_(True)
    grad = features(indptr.numel() - 1, width, seed + 2)
    out = aggregate_reference(indptr, indices, x, edge_values=values, reduce="max")
    want = torch.autograd.grad(out, (x, values), grad, allow_unused=True)
    got = max_gradients_first_tie(indptr, indices, x.detach(), values.detach(), grad)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b)
