"""Model selection: ``EarlyStopping`` keeps the best validated epoch (its weights copied when
it becomes the best), counts patience and round-trips through a checkpoint's keys;
``eval.select`` names the metric that picks the best epoch."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import planted_config

from gnnrec.config import load_config
from gnnrec.run import train_run
from gnnrec.train.checkpoint import load_checkpoint
from gnnrec.train.early_stopping import EarlyStopping


def test_the_best_epoch_its_copy_and_patience():
    weights = {"w": torch.zeros(2)}
    snapshot = lambda: ({k: v.clone() for k, v in weights.items()}, {})  # noqa: E731
    best = EarlyStopping(patience=2)
    assert best.state(weights)["best_model"] is weights  # no copy before a validation chose
    best.update(0, 0.5, snapshot)
    weights["w"] += 1  # training goes on: the copy keeps epoch 1's weights
    best.update(1, 0.4, snapshot)
    assert (best.epoch, best.bad_epochs, best.stopped) == (1, 1, False)
    assert torch.equal(best.model["w"], torch.zeros(2))
    best.update(2, 0.5, snapshot)  # equal is not better
    assert best.stopped and best.epoch == 1
    restored = EarlyStopping.restore(best.state(weights), 2, {})
    assert (restored.score, restored.epoch, restored.bad_epochs) == (0.5, 1, 2)
    best.keep_latest(5)
    assert (best.epoch, best.model, best.bad_epochs) == (6, None, 0)


@pytest.mark.parametrize("select", ["recall@20", "ndcg@20", "mrr@20", "gini@20"])
def test_eval_select_picks_the_best_epoch_by_its_metric(
    planted_dir, feature_cache, tmp_path, select
):
    run = tmp_path / select
    metrics = train_run(
        planted_config(planted_dir, feature_cache, run, "train.epochs=5", f'eval.select="{select}"')
    )
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    sign = -1.0 if select == "gini@20" else 1.0  # the less concentrated exposure, the better
    values = [sign * r[f"valid_{select}"] for r in rows]
    assert metrics["best_epoch"] == int(np.argmax(values)) + 1  # the first of the best
    assert load_checkpoint(run / "checkpoints" / "last.pt")["best_score"] == max(values)
    for name in ("mrr@20", "f1@20", "coverage@20", "personalization@20", "popularity@20"):
        assert name in metrics and f"valid_{name}" in rows[0], name


@pytest.mark.parametrize(
    "overrides",
    [
        ['eval.select="rmse"'],
        ['eval.select="ndcg@20"', "train.objective=mse"],
        ['eval.select="precision"'],
    ],
)
def test_a_metric_that_does_not_measure_the_objective_is_refused(overrides):
    with pytest.raises(ValueError, match="eval.select"):
        load_config(None, overrides)
