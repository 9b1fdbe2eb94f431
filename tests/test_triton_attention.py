"""The Triton attention kernels (run by the interpreter on the CPU) against the fp64 oracle,
forward and every gradient, in every dtype, with heavy rows split into chunks; gradcheck,
chunked against unchunked, bit-identical reruns, dropout against the torch backend; a GAT
model's sampled step on them equals the step on the CPU backend."""

from __future__ import annotations

import pytest
import torch
from attention_cases import AttentionCase, attention_cases, attention_inputs, forward_and_grads
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import csr_graphs, tile_settings

from gnnrec.kernels import ATTENTION_BACKENDS, aggregate
from gnnrec.kernels.attention import EdgeAttention, attention_reference
from gnnrec.kernels.schedule import ScheduleParams
from gnnrec.kernels.tolerances import TOLERANCES

pytestmark = pytest.mark.skipif(
    "triton" not in ATTENTION_BACKENDS, reason="triton is not installed"
)

DTYPES = [torch.float64, torch.float32, torch.bfloat16, torch.float16]
HUB = (torch.tensor([0, 0, 11, 12, 12]), torch.tensor([0, 1, 2, 3, 0, 0, 1, 2, 3, 1, 2, 3]), 4)


def _run(indptr, indices, x, src, dst, seed, backend="triton", slope=0.2, attention=None, **tiles):
    """The output and the gradients of ``<y, w>`` (:func:`forward_and_grads`)."""

    def fn(x, src, dst):
        edges = attention or EdgeAttention(src, dst, negative_slope=slope)
        return aggregate(
            indptr, indices, x, reduce="attention", attention=edges, backend=backend, **tiles
        )

    return forward_and_grads(fn, x, src, dst, seed)


def _oracle(indptr, indices, x, src, dst, seed, slope=0.2):
    """fp64 autograd through ``[E, H, F]`` messages, on the same (rounded) inputs and weights."""

    def fn(x, src, dst):
        attention = EdgeAttention(src, dst, negative_slope=slope)
        return attention_reference(indptr, indices, x, attention)

    x, src, dst = (t.detach().double().requires_grad_() for t in (x, src, dst))
    return forward_and_grads(fn, x, src, dst, seed)


@given(case=attention_cases(DTYPES, max_nodes=10, max_edges=30), tiles=tile_settings(False))
@example(  # a hub row of 11 edges split into chunks of 2, with repeated sources
    case=AttentionCase(HUB, heads=2, width=3, scale=30.0, slope=0.2, seed=0, dtype=torch.float32),
    tiles={"params": ScheduleParams(4, 2, 3), "block_e": 2, "block_f": 2},
)
def test_forward_and_gradients_match_the_fp64_oracle(case, tiles):
    (indptr, indices, _), slope, seed, dtype = case.graph, case.slope, case.seed, case.dtype
    x, src, dst = case.inputs()
    got, got_grads = _run(indptr, indices, x, src, dst, seed, slope=slope, **tiles)
    want, want_grads = _oracle(indptr, indices, x, src, dst, seed, slope=slope)
    assert got.dtype == dtype and got.shape == (indptr.numel() - 1, case.heads * case.width)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(got.double(), want, **tol)
    # gradients of src/dst go through dalpha = <g, x> over F features and the softmax's row
    # sums: a few roundings more than the output
    grad_tol = {key: value * 10 for key, value in tol.items()}
    for mine, theirs, t in zip(got_grads, want_grads, (x, src, dst)):
        assert mine.dtype == t.dtype and mine.shape == t.shape
        torch.testing.assert_close(mine.double(), theirs, **grad_tol)
    empty = (indptr[1:] == indptr[:-1]).nonzero().flatten()
    assert torch.equal(got[empty], torch.zeros_like(got[empty]))  # empty rows give 0


@settings(max_examples=max(5, settings.default.max_examples // 4))
@given(graph=csr_graphs(max_rows=6, max_cols=6, max_edges=14), tiles=tile_settings(False))
@example(graph=HUB, tiles={"params": ScheduleParams(4, 2, 3), "block_e": 2, "block_f": 2})
def test_gradcheck_in_fp64(graph, tiles):
    indptr, indices, _ = graph
    x, src, dst = attention_inputs(graph, 2, 2, 1.0, 0, torch.float64)

    def fn(x, src, dst):
        attention = EdgeAttention(src, dst)
        return aggregate(
            indptr, indices, x, reduce="attention", attention=attention, backend="triton", **tiles
        )

    # fast mode: the Jacobian checked along random directions (two forward passes each, not two
    # per input element), which the interpreter can afford for every example
    assert torch.autograd.gradcheck(fn, (x, src, dst), fast_mode=True)


@given(graph=csr_graphs(max_edges=40), seed=st.integers(0, 2**16), tiles=tile_settings(False))
def test_split_rows_equal_whole_rows_and_reruns_are_bit_identical(graph, seed, tiles):
    indptr, indices, _ = graph
    x, src, dst = attention_inputs(graph, 2, 3, 10.0, seed, torch.float32)
    split, split_grads = _run(indptr, indices, x, src, dst, seed, **tiles)
    again, again_grads = _run(indptr, indices, x, src, dst, seed, **tiles)
    assert torch.equal(split, again)
    assert all(torch.equal(a, b) for a, b in zip(split_grads, again_grads))
    whole_tiles = {**tiles, "params": ScheduleParams(heavy_threshold=10**6)}
    whole, whole_grads = _run(indptr, indices, x, src, dst, seed, **whole_tiles)
    torch.testing.assert_close(split, whole, **TOLERANCES[torch.float32])
    for a, b in zip(split_grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_dropout_keeps_the_same_edges_as_the_torch_backend():
    indptr, indices, m = HUB
    x, src, dst = attention_inputs(HUB, 2, 3, 1.0, 0, torch.float64)
    results = {}
    for backend in ("triton", "torch"):
        generator = torch.Generator().manual_seed(5)
        attention = EdgeAttention(src, dst, dropout=0.4, generator=generator)
        results[backend] = _run(indptr, indices, x, src, dst, 0, backend, attention=attention)
    (mine, mine_grads), (theirs, theirs_grads) = results["triton"], results["torch"]
    undropped, _ = _run(indptr, indices, x, src, dst, 0)
    assert not torch.allclose(mine, undropped)  # the draw dropped something
    torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    for a, b in zip(mine_grads, theirs_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_no_edges_and_wrong_devices():
    indptr, indices = torch.zeros(4, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    x, src, dst = attention_inputs((indptr, indices, 2), 2, 2, 1.0, 0, torch.float32)
    out, grads = _run(indptr, indices, x, src, dst, 0)
    assert torch.equal(out, torch.zeros(3, 4))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)
    with pytest.raises(ValueError, match="floating-point"):
        attention = EdgeAttention(src, dst)
        aggregate(indptr, indices, x.long(), reduce="attention", attention=attention,
                  backend="triton")  # fmt: skip


@pytest.mark.parametrize("trimmed", [False, True])
def test_a_gat_model_on_the_triton_kernels_equals_it_on_the_cpu_backend(monkeypatch, trimmed):
    """What a GPU run does (``backend="auto"`` picks Triton for CUDA tensors), on the CPU: a
    sampled step of a 2-layer GAT model, embeddings and every gradient."""
    import gnnrec.kernels as kernels
    from gnnrec.data import CSR
    from gnnrec.models.config import ModelConfig, build_model
    from gnnrec.models.graph_view import GraphView
    from gnnrec.train.sampler import NeighborSampler

    n, g = 40, torch.Generator().manual_seed(0)
    src, dst = torch.randint(0, n, (2, 90), generator=g)
    graph = CSR.from_edges(torch.cat([src, dst]), torch.cat([dst, src]), n, n)
    sub = NeighborSampler(graph, [4, 3]).sample(torch.randint(0, n, (6,), generator=g), g)
    view = GraphView.of(sub.csr, hops=sub.hops if trimmed else None)
    x = torch.randn(sub.n_id.numel(), 5, generator=g)
    config = ModelConfig(name="gat", hidden=8, heads=2, layers=2, conv_weights=True)
    results = []
    for backend in ("sparse", "triton"):
        model = build_model(config, n, 0, feature_dim=5, seed=0)
        chosen = kernels.ATTENTION_BACKENDS[backend]
        monkeypatch.setitem(kernels.ATTENTION_BACKENDS, "sparse", chosen)
        z = model(sub.n_id, x, view, None)[: sub.batch_size]
        (z * torch.linspace(-1, 1, z.numel()).view_as(z)).sum().backward()
        results.append((z.detach(), [p.grad for p in model.parameters() if p.grad is not None]))
    (cpu, cpu_grads), (triton, triton_grads) = results
    torch.testing.assert_close(triton, cpu, rtol=1e-5, atol=1e-6)
    assert len(cpu_grads) == len(triton_grads) >= 4  # weights, attention vectors, IDs
    for a, b in zip(triton_grads, cpu_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@settings(max_examples=10)
@given(case=attention_cases([torch.float32], max_nodes=8, max_edges=20))
def test_the_weights_the_kernel_used_are_handed_back(case):
    """``record=True``: the softmax weights the forward computed ``[E, H]``, as the CPU
    backend's (what ``GATLayer(return_attention=True)`` returns on a GPU)."""
    (indptr, indices, _), slope = case.graph, case.slope
    x, src, dst = case.inputs()
    weights = {}
    for backend in ("triton", "torch"):
        attention = EdgeAttention(src, dst, negative_slope=slope, record=True)
        with torch.no_grad():
            aggregate(indptr, indices, x, reduce="attention", attention=attention, backend=backend)
        weights[backend] = attention.weights
    assert weights["triton"].shape == (indices.numel(), src.shape[1])
    torch.testing.assert_close(weights["triton"], weights["torch"], rtol=1e-5, atol=1e-6)
