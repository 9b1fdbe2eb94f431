"""Locality orders (kernels/node_order.py): permutations, aggregation equal up to the
permutation, and Cuthill-McKee recovering a shuffled band."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import csr_graphs, features

from gnnrec.kernels import aggregate
from gnnrec.kernels.csr import edge_rows, gcn_scales
from gnnrec.kernels.node_order import ORDERS, node_order, permute_csr


def bandwidth(indptr: torch.Tensor, indices: torch.Tensor) -> int:
    return int((edge_rows(indptr) - indices.long()).abs().max()) if indices.numel() else 0


@pytest.mark.parametrize("kind", ORDERS)
@given(csr_graphs(square=True, max_rows=20, max_edges=60), st.integers(0, 2**16), st.data())
def test_aggregation_is_equal_up_to_the_permutation(kind, graph, seed, data):
    indptr, indices, n = graph
    perm = node_order(indptr, indices, kind)
    assert sorted(perm.tolist()) == list(range(n))
    p_indptr, p_indices = permute_csr(indptr, indices, perm)
    assert p_indices.dtype == indices.dtype
    reduce = data.draw(st.sampled_from(["sum", "mean", "max"]))
    x = features(n, 5, seed)
    r, c = gcn_scales(indptr, indices, n)
    scales = {} if reduce != "sum" else {"row_scale": r.double(), "col_scale": c.double()}
    out = aggregate(indptr, indices, x, reduce=reduce, backend="torch", **scales)
    p_scales = {k: v[perm] for k, v in scales.items()}
    p_out = aggregate(p_indptr, p_indices, x[perm], reduce=reduce, backend="torch", **p_scales)
    torch.testing.assert_close(p_out, out[perm])


def test_reverse_cuthill_mckee_recovers_a_shuffled_band():
    """A path 0-1-2-...-99 with its nodes shuffled has bandwidth near 100; RCM gives 1."""
    n = 100
    shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    src = torch.cat([torch.arange(n - 1), torch.arange(1, n)])
    dst = torch.cat([torch.arange(1, n), torch.arange(n - 1)])
    src, dst = shuffle[src], shuffle[dst]
    order = torch.argsort(dst * n + src)
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)
    indices = src[order].to(torch.int32)
    assert bandwidth(indptr, indices) > 50
    p_indptr, p_indices = permute_csr(indptr, indices, node_order(indptr, indices, "rcm"))
    assert bandwidth(p_indptr, p_indices) == 1
