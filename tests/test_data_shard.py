"""Data-parallel building blocks without Ray: batch slices, their loss weights, edge membership
for negatives, and one process computing several slices (gradient accumulation)."""

from __future__ import annotations

import pytest
import torch
from helpers import planted_config
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.data.graph_store import CSR
from gnnrec.pipeline import model_for, prepare
from gnnrec.train.data_shard import DataShard, slice_generator
from gnnrec.train.link_batches import LinkBatch
from gnnrec.train.trainer import Trainer


@given(
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 11)), max_size=60),
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 11)), min_size=1, max_size=30),
)
def test_csr_contains_is_edge_membership(edges, queries):
    rows = torch.tensor([e[0] for e in edges], dtype=torch.int64)
    cols = torch.tensor([e[1] for e in edges], dtype=torch.int64)
    csr = CSR.from_edges(rows, cols, 10, 12)
    q_rows = torch.tensor([q[0] for q in queries])
    q_cols = torch.tensor([q[1] for q in queries])
    expected = [q in set(edges) for q in queries]
    assert csr.contains(q_rows, q_cols).tolist() == expected


@given(st.integers(1, 50), st.integers(1, 8))
def test_batch_slices_cover_the_batch_in_order(size, parts):
    batch = LinkBatch(
        torch.arange(size), torch.arange(size) + 100, torch.zeros(size, 3), torch.arange(size)
    )
    pieces = [batch.part(k, parts) for k in range(parts)]
    assert torch.equal(torch.cat([p.users for p in pieces]), batch.users)
    assert max(len(p) for p in pieces) - min(len(p) for p in pieces) <= 1
    assert all(p.neg_items.shape[1] == 3 for p in pieces)


def test_slice_weights_average_to_the_global_mean():
    """Averaging ``W * B_p / B * mean_p`` over W processes is the mean over the whole batch."""
    values = torch.arange(10.0)
    for world in (1, 2, 5):
        shards = [DataShard(r, world, 10) for r in range(world)]
        per_process = [sum(s.weight(1, 10) * float(values[p]) for p in s.parts) for s in shards]
        assert sum(per_process) / world == pytest.approx(float(values.mean()))


def test_a_shard_rejects_an_uneven_layout():
    with pytest.raises(ValueError, match="multiple of the number of workers"):
        DataShard(0, 2, 3)
    with pytest.raises(ValueError, match="outside a world"):
        DataShard(2, 2, 2)


def test_slice_generators_depend_on_every_key():
    draws = {
        keys: torch.rand(4, generator=slice_generator(*keys)).tolist()
        for keys in [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0), (0, 1, 0, 0), (1, 0, 0, 0)]
    }
    assert len({tuple(v) for v in draws.values()}) == len(draws)
    assert torch.rand(4, generator=slice_generator(0, 0, 0, 1)).tolist() == draws[(0, 0, 0, 1)]


def test_two_slices_on_one_process_take_the_whole_batch_step(planted_dir, feature_cache, tmp_path):
    """Full-graph mode: a batch computed as two accumulated slices gives the same parameters as
    the batch in one piece (float32 summation order aside)."""
    states = {}
    for partitions in (1, 2):
        config = planted_config(
            planted_dir, feature_cache, tmp_path / f"p{partitions}", "train.epochs=2"
        )
        prepared = prepare(config, progress=False)
        model = model_for(config, prepared.data)
        trainer = Trainer(
            model,
            prepared.data,
            config.train,
            tmp_path / f"p{partitions}",
            shard=DataShard(0, 1, partitions),
        )
        history = trainer.train()
        states[partitions] = (model.state_dict(), history)
    (a, history_a), (b, history_b) = states[1], states[2]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    assert history_b[-1]["loss"] == pytest.approx(history_a[-1]["loss"], rel=1e-5)
