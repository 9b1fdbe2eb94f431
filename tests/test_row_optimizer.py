"""Row-wise Adagrad on ID tables: the math, only touched rows move, and a run learns and resumes
exactly with it (one process; several: tests/test_sharded_tables.py)."""

from __future__ import annotations

import pytest
import torch
from helpers import planted_config
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.config import load_config
from gnnrec.run import load_run, train_run
from gnnrec.train.sharded_table import ShardedTable


@given(
    rows=st.integers(1, 12),
    width=st.integers(1, 6),
    lookups=st.lists(st.lists(st.integers(0, 11), min_size=1, max_size=10), min_size=1, max_size=3),
    lr=st.sampled_from([0.01, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_rowwise_adagrad_equals_the_dense_formula(rows, width, lookups, lr, seed):
    torch.manual_seed(seed)
    start = torch.randn(rows, width)
    table = ShardedTable.of(start, lr=lr)  # one process: the whole table is its shard
    weight, state = start.double(), torch.zeros(rows, dtype=torch.float64)
    for ids in lookups:  # successive steps, each with repeated ids, looked up twice
        ids = torch.tensor([i % rows for i in ids])
        # the second lookup: a row of the first, and one that may not be there
        more = torch.tensor([int(ids[0]), (int(ids[-1]) + 1) % rows])
        target = torch.randn(len(ids), width)
        table.zero_grad()
        ((table(ids) - target) ** 2).sum().backward()
        (table(more) * 3).sum().backward()
        table.step()
        dense = torch.zeros(rows, width, dtype=torch.float64)  # d/dw of the same losses
        dense.index_add_(0, ids, 2 * (weight[ids] - target.double()))
        dense.index_add_(0, more, torch.full((2, width), 3.0, dtype=torch.float64))
        touched = torch.zeros(rows, dtype=torch.bool)
        touched[ids] = True
        touched[more] = True
        state[touched] += dense[touched].pow(2).mean(1)
        weight[touched] -= lr * dense[touched] / (state[touched].sqrt() + 1e-8).unsqueeze(1)
        torch.testing.assert_close(table.shard.double(), weight, rtol=1e-4, atol=1e-5)
        assert torch.equal(table.state > 0, state > 0)
        assert table.bytes_sent == 0  # nothing leaves a lone process


ROWWISE = ["train.id_optimizer=rowwise_adagrad", "train.id_lr=0.1"]
SAMPLED = ["train.mode=sampled", "train.fanouts=[2, 2]", "model.text_features=false"]


def test_a_sampled_step_moves_only_the_rows_it_touched(planted_dir, feature_cache, tmp_path):
    from gnnrec.pipeline import model_for, prepare
    from gnnrec.train.trainer import Trainer

    config = planted_config(planted_dir, feature_cache, tmp_path / "run", *ROWWISE, *SAMPLED)
    config.train.batch_size = 4
    prepared = prepare(config)
    model = model_for(config, prepared.data)
    trainer = Trainer(model, prepared.data, config.train, tmp_path / "run")
    table = trainer.tables["embedding"]
    assert model.embedding is table and not any(
        p.numel() == table.shard.numel() for p in model.parameters()
    )
    before = table.shard.clone()
    batch = next(iter(trainer.batcher.epoch(torch.Generator().manual_seed(0))))
    trainer.train_step(batch, torch.Generator().manual_seed(1))
    moved = (table.shard != before).any(1)
    state = table.state
    assert 0 < moved.sum() < moved.numel() // 2  # a 4-pair batch's sampled subgraph
    assert torch.equal(moved, state > 0)  # state exactly for the rows that moved
    assert trainer.optimizer is None  # IDs only: nothing dense left for Adam


def test_rowwise_run_learns_and_resumes_exactly(planted_dir, feature_cache, tmp_path):
    straight = train_run(
        planted_config(planted_dir, feature_cache, tmp_path / "a", *ROWWISE, "train.epochs=3")
    )
    assert straight["recall@20"] > straight["baselines"]["popularity"]["recall@20"]
    train_run(
        planted_config(planted_dir, feature_cache, tmp_path / "b", *ROWWISE, "train.epochs=2")
    )
    resumed = train_run(
        planted_config(planted_dir, feature_cache, tmp_path / "b", *ROWWISE, "train.epochs=3")
    )
    assert resumed["epochs_run"] == 3 and resumed["recall@20"] == straight["recall@20"]
    a, b = load_run(tmp_path / "a")[2].state_dict(), load_run(tmp_path / "b")[2].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="trained with different train.id_optimizer"):
        train_run(planted_config(planted_dir, feature_cache, tmp_path / "b", "train.epochs=4"))


def test_id_optimizer_is_checked():
    with pytest.raises(ValueError, match="id_optimizer must be one of"):
        load_config(None, ["train.id_optimizer=sgd"])
    with pytest.raises(ValueError, match="id_lr must be > 0"):
        load_config(None, ["train.id_lr=0"])
    with pytest.raises(ValueError, match="id_table_on must be one of"):
        load_config(None, [*ROWWISE, "train.id_table_on=disk"])
    with pytest.raises(ValueError, match='need id_optimizer = "rowwise_adagrad"'):
        load_config(None, ["train.id_cache_rows=10"])


def test_a_host_table_with_cached_hot_rows_trains_as_the_device_table(
    planted_dir, feature_cache, tmp_path
):
    runs = {
        "device": (),
        "host, 40 rows cached": ("train.id_table_on=host", "train.id_cache_rows=40"),
        "host, nothing cached": ("train.id_table_on=host",),
    }
    weights = {}
    for name, options in runs.items():
        run_dir = tmp_path / name.replace(" ", "_").replace(",", "")
        config = planted_config(
            planted_dir, feature_cache, run_dir, *ROWWISE, *SAMPLED, "train.epochs=2", *options
        )
        train_run(config)
        weights[name] = load_run(run_dir)[2].state_dict()
    reference = weights.pop("device")
    for state in weights.values():  # the same updates, whichever copy of a row took them
        assert all(torch.equal(state[k], reference[k]) for k in reference)


def test_a_cached_row_is_read_and_updated_on_the_device_and_written_back():
    weight = torch.arange(12.0).reshape(6, 2)
    plain = ShardedTable(weight.clone(), 6, lr=0.5)
    cached = ShardedTable(weight.clone(), 6, lr=0.5, hot=torch.tensor([1, 4]))
    for table in (plain, cached):
        table(torch.tensor([1, 2, 4])).pow(2).sum().backward()
        table.step()
    assert cached.cache is not None and cached.cache.dirty  # the updates of rows 1 and 4
    assert not torch.equal(cached._rows[1], plain.shard[1])  # ... are on the device only
    assert torch.equal(cached.shard, plain.shard) and torch.equal(cached.state, plain.state)
    assert not cached.cache.dirty  # written back when the shard was read


def test_no_table_is_held_twice_before_a_validation(planted_dir, feature_cache, tmp_path):
    import gc

    from gnnrec.pipeline import model_for, prepare
    from gnnrec.train.trainer import Trainer

    config = planted_config(
        planted_dir, feature_cache, tmp_path / "run", *ROWWISE, *SAMPLED, "train.epochs=1"
    )
    prepared = prepare(config)
    model = model_for(config, prepared.data)
    trainer = Trainer(model, prepared.data, config.train, tmp_path / "run")
    shape = trainer.tables["embedding"].shard.shape
    copies = []  # tensors shaped like the table, at every step of the epoch

    def count(step: int) -> None:
        copies.append(
            sum(isinstance(o, torch.Tensor) and o.shape == shape for o in gc.get_objects())
        )

    trainer.on_step = count
    trainer.train()
    assert copies and set(copies) == {1}  # the table itself, no "best" copy of it yet
