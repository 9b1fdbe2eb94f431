"""CSR/CSC storage, memory-mapped files, and PyG conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import gnnrec.data.graph_store as graph_store
import gnnrec.kernels.csr as csr_ops
from gnnrec.data import CSR, DataError, GraphStore

edges = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=40)
    )
)


def _dense(csr: CSR) -> torch.Tensor:
    dense = torch.zeros(csr.num_rows, csr.num_cols)
    dense[csr.row_ids(), csr.indices.long()] = 1
    return dense


@given(edges)
def test_csr_from_edges_matches_dense_and_transposes(case):
    n, pairs = case
    rows = torch.tensor([p[0] for p in pairs], dtype=torch.int64)
    cols = torch.tensor([p[1] for p in pairs], dtype=torch.int64)
    csr = CSR.from_edges(rows, cols, n, n)
    expected = torch.zeros(n, n)
    expected[rows, cols] = 1
    assert csr.indptr.dtype == torch.int64 and csr.indices.dtype == torch.int32
    assert torch.equal(_dense(csr), expected)
    assert torch.equal(_dense(csr.transpose()), expected.T)
    store = GraphStore.from_csr(csr)
    assert store.symmetric == bool(torch.equal(expected, expected.T))


def test_bipartite_store_roundtrips_through_disk_and_pyg(tmp_path):
    users, items = np.array([0, 0, 1, 2, 2]), np.array([1, 1, 0, 2, 3])
    store = GraphStore.bipartite(users, items, 3, 4)
    assert store.num_nodes == 7 and store.num_edges == 8  # the duplicate is merged
    deg = store.csr.degree().float()
    row_scale, col_scale = store.gcn_scales()
    assert torch.allclose(row_scale, torch.where(deg > 0, deg.rsqrt(), 0.0))
    assert torch.equal(row_scale, col_scale)  # symmetric
    loaded = GraphStore.load(store.save(tmp_path / "g"))
    assert isinstance(loaded.csr.indices, torch.Tensor)
    assert torch.equal(loaded.csr.indptr, store.csr.indptr)
    assert torch.equal(loaded.csr.indices, store.csr.indices)
    assert (loaded.num_users, loaded.num_items) == (3, 4)
    hetero = store.to_hetero()
    pairs = hetero["user", "rates", "item"].edge_index.T.tolist()
    assert sorted(map(tuple, pairs)) == [(0, 1), (1, 0), (2, 2), (2, 3)]
    for back in (GraphStore.from_pyg(hetero), GraphStore.from_pyg(store.to_pyg())):
        assert torch.equal(back.csr.indptr, store.csr.indptr)
        assert torch.equal(back.csr.indices, store.csr.indices)


@st.composite
def bipartite_logs(draw):
    """Users, items, their (repeating) interactions and optional same-type edges."""
    num_users, num_items = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    pairs = draw(st.lists(st.tuples(st.integers(0, num_users - 1), st.integers(0, num_items - 1))))
    same = {
        kind: draw(st.none() | st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))))
        for kind, n in (("user", num_users), ("item", num_items))
    }
    return num_users, num_items, pairs, same


@given(bipartite_logs())
def test_bipartite_store_is_the_symmetric_adjacency(log):
    num_users, num_items, pairs, same = log
    n = num_users + num_items
    expected = torch.zeros(n, n)
    for u, i in pairs:
        expected[u, num_users + i] = expected[num_users + i, u] = 1
    edges = {}
    for kind, offset in (("user", 0), ("item", num_users)):
        if same[kind] is not None:
            edges[kind] = np.array(same[kind], dtype=np.int64).reshape(-1, 2).T
            for a, b in same[kind]:
                expected[offset + a, offset + b] = expected[offset + b, offset + a] = 1
    users = np.array([u for u, _ in pairs], dtype=np.int64)
    items = np.array([i for _, i in pairs], dtype=np.int64)
    store = GraphStore.bipartite(
        users, items, num_users, num_items, edges.get("user"), edges.get("item")
    )
    assert store.csr.indptr.dtype == torch.int64 and store.csr.indices.dtype == torch.int32
    assert torch.equal(_dense(store.csr), expected)  # duplicates merged, both directions
    with pytest.MonkeyPatch.context() as patched:  # the keys turned into columns 3 at a time
        patched.setattr(graph_store, "KEY_CHUNK", 3)
        patched.setattr(csr_ops, "DEGREE_CHUNK", 3)
        chunked = GraphStore.bipartite(
            users, items, num_users, num_items, edges.get("user"), edges.get("item")
        )
    assert torch.equal(chunked.csr.indptr, store.csr.indptr)
    assert torch.equal(chunked.csr.indices, store.csr.indices)
    assert all(torch.equal(a, b) for a, b in zip(chunked.gcn_scales(), store.gcn_scales()))
    for r in range(n):  # each row's columns sorted
        row = store.csr.indices[store.csr.indptr[r] : store.csr.indptr[r + 1]]
        assert torch.equal(row, row.sort().values)


def test_load_rejects_a_tampered_store(tmp_path):
    store = GraphStore.bipartite(np.array([0]), np.array([0]), 1, 1)
    folder = store.save(tmp_path / "g")
    np.save(folder / "csr_indices.npy", np.zeros(5, dtype=np.int32))
    with pytest.raises(DataError, match="csr_indices.npy has shape"):
        GraphStore.load(folder)
    with pytest.raises(DataError, match="no manifest.json"):
        GraphStore.load(tmp_path)
