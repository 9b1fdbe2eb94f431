"""Row-wise Adagrad on sparse gradients: the math, only touched rows move, and a run learns and
resumes exactly with it."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_training import planted_config
from torch import nn

from gnnrec.config import load_config
from gnnrec.run import load_run, train_run
from gnnrec.train.row_optimizer import RowwiseAdagrad


@given(
    rows=st.integers(1, 12),
    width=st.integers(1, 6),
    lookups=st.lists(st.lists(st.integers(0, 11), min_size=1, max_size=10), min_size=1, max_size=3),
    lr=st.sampled_from([0.01, 0.5]),
    seed=st.integers(0, 2**16),
)
def test_rowwise_adagrad_equals_the_dense_formula(rows, width, lookups, lr, seed):
    torch.manual_seed(seed)
    table = nn.Embedding(rows, width, sparse=True)
    weight = table.weight.detach().clone().double()
    optimizer = RowwiseAdagrad(table.parameters(), lr=lr)
    state = torch.zeros(rows, dtype=torch.float64)
    for ids in lookups:  # successive steps, each with repeated ids
        ids = torch.tensor([i % rows for i in ids])
        target = torch.randn(len(ids), width)
        optimizer.zero_grad()
        ((table(ids) - target) ** 2).sum().backward()
        optimizer.step()
        dense = torch.zeros(rows, width, dtype=torch.float64)  # d/dw of the same loss
        dense.index_add_(0, ids, 2 * (weight[ids] - target.double()))
        touched = torch.zeros(rows, dtype=torch.bool)
        touched[ids] = True
        state[touched] += dense[touched].pow(2).mean(1)
        weight[touched] -= lr * dense[touched] / (state[touched].sqrt() + 1e-8).unsqueeze(1)
        torch.testing.assert_close(table.weight.detach().double(), weight, rtol=1e-4, atol=1e-5)
        assert torch.equal(optimizer.state[table.weight]["sum"] > 0, state > 0)


def test_dense_gradients_are_refused():
    table = nn.Embedding(3, 2)
    table(torch.tensor([0])).sum().backward()
    with pytest.raises(ValueError, match="sparse gradients"):
        RowwiseAdagrad(table.parameters()).step()


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
    before = model.embedding.weight.detach().clone()
    batch = next(iter(trainer.batcher.epoch(torch.Generator().manual_seed(0))))
    trainer.train_step(batch, torch.Generator().manual_seed(1))
    moved = (model.embedding.weight.detach() != before).any(1)
    state = trainer.row_optimizer.state[model.embedding.weight]["sum"]
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


def test_id_optimizer_is_checked():
    with pytest.raises(ValueError, match="id_optimizer must be one of"):
        load_config(None, ["train.id_optimizer=sgd"])
    with pytest.raises(ValueError, match="id_lr must be > 0"):
        load_config(None, ["train.id_lr=0"])
    with pytest.raises(ValueError, match="trains in one process for now"):
        load_config(None, ["train.id_optimizer=rowwise_adagrad", "parallel.num_workers=2"])
