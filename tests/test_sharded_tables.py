"""ID tables sharded over two torch.distributed (gloo) processes: the same update as one process,
half the table each, and a step's traffic exactly the rows it touched."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sharded_tables_worker import DIM, STEPS, lookups, loss, start

from gnnrec.train.sharded_table import ShardedTable, drawn_rows, rows_of_rank

SCRIPT = Path(__file__).with_name("sharded_tables_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_shards_update_as_one_table_and_move_only_touched_rows(tmp_path):
    port = _free_port()
    ranks = [
        subprocess.Popen([sys.executable, str(SCRIPT), str(r), str(port), str(tmp_path)])
        for r in range(2)
    ]
    assert [p.wait(timeout=120) for p in ranks] == [0, 0]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    alone = ShardedTable.of(start(), lr=0.3)  # one process: both ranks' lookups, same weights
    for step in range(STEPS):
        alone.zero_grad()
        for rank in range(2):
            for k, ids in enumerate(lookups(rank, step)):
                (loss(alone(ids), step, k) / 2).backward()
        alone.step()
    for key, whole in alone.shard_state().items():
        parts = [r["shard"][key] for r in ranks]
        # each rank holds its rows r = rank (mod 2) and their state: 12 and 11 of 23
        assert [len(part) for part in parts] == [12, 11]
        torch.testing.assert_close(parts[0], whole[0::2], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(rows_of_rank(parts, 0, 1), whole, rtol=1e-6, atol=1e-6)

    # traffic: per lookup, each rank sends its W - 1 counts, the ids it needs from the other
    # rank, and for each such row the row itself (owner to asker) and its gradient (back)
    expected = 0
    for step in range(STEPS):
        for rank in range(2):
            for ids in lookups(rank, step):
                remote = (ids.unique() % 2 != rank).sum().item()
                expected += 8 + remote * (8 + 2 * DIM * 4)
    assert sum(r["bytes_sent"] for r in ranks) == expected


@given(rows=st.integers(1, 40), saved=st.integers(1, 5), world=st.integers(1, 5))
def test_rows_saved_by_any_number_of_ranks_reshard_to_any_other(rows, saved, world):
    """A table saved as ``saved`` modulo shards gives every rank of another world its rows."""
    table = torch.arange(rows * 2, dtype=torch.float32).view(rows, 2)
    parts = [table[s::saved] for s in range(saved)]
    for rank in range(world):
        assert torch.equal(rows_of_rank(parts, rank, world), table[rank::world])


@settings(deadline=None)
@given(rows=st.integers(1, 60), world=st.integers(1, 5), block=st.integers(1, 9))
def test_drawn_rows_are_every_world_s_share_of_one_table(rows, world, block):
    """Each rank draws only its rows of the same table, block by block, for any world."""
    import gnnrec.train.sharded_table as sharded

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sharded, "DRAW_BLOCK", block)
        whole = drawn_rows(rows, 3, 0.1, (7, 0), rank=0, world=1)
        for rank in range(world):
            assert torch.equal(drawn_rows(rows, 3, 0.1, (7, 0), rank, world), whole[rank::world])
        assert not torch.equal(drawn_rows(rows, 3, 0.1, (7, 1), 0, 1), whole)  # another key
    assert torch.equal(drawn_rows(rows, 3, 0.0, (7, 0), 0, 1), torch.zeros(rows, 3))


def test_drawn_rows_have_the_standard_deviation_asked_for():
    values = drawn_rows(100_000, 8, 0.1, (0, 0), rank=1, world=3)
    assert values.shape == (33_333, 8)
    assert abs(values.std().item() - 0.1) < 0.002 and abs(values.mean().item()) < 0.002
