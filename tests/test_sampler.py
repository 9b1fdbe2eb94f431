"""Properties of our neighbor sampler, and agreement with torch-sparse's when installed."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import csr_graphs

from gnnrec.data import CSR
from gnnrec.train.sampler import NeighborSampler, unique_in_order


def _neighbors(csr: CSR, node: int) -> list[int]:
    return csr.indices[csr.indptr[node] : csr.indptr[node + 1]].tolist()


@given(
    csr_graphs(square=True, max_rows=24, max_edges=80),
    st.lists(st.integers(-1, 4), min_size=1, max_size=3),
    st.data(),
)
def test_sampled_subgraph_properties(graph, fanouts, data):
    indptr, indices, n = graph
    csr = CSR(indptr, indices, n)
    seeds = torch.tensor(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=6)))
    seed = data.draw(st.integers(0, 2**31))
    sub = NeighborSampler(csr, fanouts).sample(seeds, torch.Generator().manual_seed(seed))
    n_id = sub.n_id.tolist()
    # Seeds first, in order of first appearance; every node once; seed_index maps back.
    assert n_id[: sub.batch_size] == list(dict.fromkeys(seeds.tolist()))
    assert len(set(n_id)) == len(n_id)
    assert sub.n_id[sub.seed_index].tolist() == seeds.tolist()
    # Every sampled edge exists; per target, the sample is a sub-multiset of its neighbors, of
    # size min(deg, fanout), and the whole neighborhood when deg <= fanout.
    hop_of = {}
    start = 0
    for hop, count in enumerate(sub.num_sampled_nodes):
        for local in range(start, start + count):
            hop_of[local] = hop
        start += count
    for target in range(sub.n_id.numel()):
        sampled = [n_id[j] for j in _neighbors(sub.csr, target)]
        hop = hop_of[target]
        if hop == len(fanouts):
            assert sampled == []  # the last hop is reached, not expanded
            continue
        full = _neighbors(csr, n_id[target])
        fanout = fanouts[hop]
        want = len(full) if fanout < 0 else min(len(full), fanout)
        assert len(sampled) == want
        assert not Counter(sampled) - Counter(full)
        if fanout < 0 or len(full) <= fanout:
            assert Counter(sampled) == Counter(full)
    assert sum(sub.num_sampled_edges) == sub.csr.num_edges
    data_obj = sub.to_pyg()
    assert data_obj.batch_size == sub.batch_size and torch.equal(data_obj.n_id, sub.n_id)


def test_unique_in_order():
    values = torch.tensor([5, 3, 5, 9, 3, 1])
    uniq, index = unique_in_order(values)
    assert uniq.tolist() == [5, 3, 9, 1]
    assert torch.equal(uniq[index], values)


@pytest.mark.parametrize("degree", [10, 40])
def test_sampling_is_uniform_over_neighbors(degree):
    """A hub with 10 (shuffled) or 40 (redrawn) neighbors and fanout 3: every neighbor is drawn
    with probability 3 / degree (the same check ``gnnrec bench epoch`` runs on a GPU)."""
    from gnnrec.bench.sampling import uniformity_chi2

    chi2, critical = uniformity_chi2("cpu", degree)
    assert chi2 < critical  # chi-square at p = 0.001


def test_agrees_with_torch_sparse_neighbor_sample():
    torch_sparse = pytest.importorskip("torch_sparse")  # noqa: F841
    g = torch.Generator().manual_seed(1)
    n = 60
    rows, cols = torch.randint(0, n, (600,), generator=g), torch.randint(0, n, (600,), generator=g)
    csr = CSR.from_edges(rows, cols, n, n)
    seeds = torch.arange(0, n, 7)
    ours = NeighborSampler(csr, [4])
    covered_ours, covered_theirs = set(), set()
    for trial in range(200):
        sub = ours.sample(seeds, torch.Generator().manual_seed(trial))
        node, row, col, _ = torch.ops.torch_sparse.neighbor_sample(
            csr.indptr, csr.indices.long(), seeds, [4], False, True
        )
        ours_edges = Counter(
            (int(sub.n_id[t]), int(sub.n_id[s]))
            for t, s in zip(sub.csr.row_ids(), sub.csr.indices.long())
        )
        theirs_edges = Counter((int(node[t]), int(node[s])) for s, t in zip(row, col))
        for edges in (ours_edges, theirs_edges):
            for target, source in edges:
                assert source in _neighbors(csr, target)  # valid
        for seed in seeds.tolist():  # same fanout per seed
            deg = min(4, len(_neighbors(csr, seed)))
            assert sum(c for (t, _), c in ours_edges.items() if t == seed) == deg
            assert sum(c for (t, _), c in theirs_edges.items() if t == seed) == deg
        covered_ours |= set(ours_edges)
        covered_theirs |= set(theirs_edges)
    full = {(s, j) for s in seeds.tolist() for j in _neighbors(csr, s)}
    assert covered_ours == covered_theirs == full  # both reach every edge over many draws
