"""Callbacks and trackers: ``gnnrec.fit(config, callbacks=[...])`` sees every epoch and can
stop training; ``track.tensorboard`` writes TensorBoard event files and ``track.mlflow_uri``
an MLflow run (a file store here), each read back with the library's own reader and equal to
``metrics.jsonl`` and ``metrics.json``."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from helpers import planted_config

import gnnrec
from gnnrec.train.callbacks import Callback

FAST = ("model.name=lightgcn", "model.text_features=false")


class StopAfter(Callback):
    """Records what it sees; asks to stop after epoch ``last``."""

    def __init__(self, last: int):
        self.last, self.rows, self.begun, self.ended = last, [], [], []

    def on_train_begin(self, config, run_dir):
        self.begun.append((config, Path(run_dir)))

    def on_epoch_end(self, row):
        self.rows.append(row)
        return row["epoch"] >= self.last

    def on_train_end(self, metrics, run_dir):
        self.ended.append(metrics)


def _history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]


def test_a_callback_sees_every_epoch_and_stops_the_run(planted_dir, feature_cache, tmp_path):
    run_dir = tmp_path / "run"
    config = planted_config(planted_dir, feature_cache, run_dir, *FAST, "train.epochs=6")
    stop = StopAfter(2)
    metrics = gnnrec.fit(config, callbacks=[stop])
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] in (1, 2)
    assert [r["epoch"] for r in stop.rows] == [1, 2]
    assert stop.rows == _history(run_dir)  # what metrics.jsonl holds
    assert "valid_recall@20" in stop.rows[0] and "valid_mrr@20" in stop.rows[0]
    ((config_seen, where),) = stop.begun
    assert config_seen["train"]["epochs"] == 6 and where == run_dir.resolve()
    assert stop.ended == [metrics]
    assert (run_dir / "model.pt").is_file()  # ended as an early-stopped run would


def test_callbacks_must_be_callbacks(planted_dir, feature_cache, tmp_path):
    config = planted_config(planted_dir, feature_cache, tmp_path / "run", *FAST)
    with pytest.raises(TypeError, match=r"callbacks\[0\] is a function: subclass gnnrec.Callback"):
        gnnrec.fit(config, callbacks=[lambda row: None])
    assert not (tmp_path / "run").exists()


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard event files in ``folder``: ``{tag: [(step, value)]}``,
    read record by record (TFRecord framing) into tensorboardX's ``Event`` protos."""
    from tensorboardX.proto.event_pb2 import Event

    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found


def test_tensorboard_event_files_hold_the_run(planted_dir, feature_cache, tmp_path):
    run_dir = tmp_path / "run"
    overrides = (*FAST, "train.epochs=3", "track.tensorboard=true")
    metrics = gnnrec.fit(planted_config(planted_dir, feature_cache, run_dir, *overrides))
    scalars = _scalars(run_dir / "tensorboard")
    history = _history(run_dir)
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3]
    for (step, value), row in zip(scalars["valid/recall_at_20"], history):
        assert step == row["epoch"] and value == pytest.approx(row["valid_recall@20"], rel=1e-6)
    ((step, recall),) = scalars["test/recall_at_20"]
    assert step == metrics["best_epoch"] and recall == pytest.approx(metrics["recall@20"], 1e-6)


def test_mlflow_gets_the_config_every_epoch_and_the_test_metrics(
    planted_dir, feature_cache, tmp_path
):
    from mlflow.tracking import MlflowClient

    run_dir, store = tmp_path / "run", tmp_path / "mlruns"
    overrides = (*FAST, f'track.mlflow_uri="{store}"', 'track.mlflow_experiment="planted"')
    first = planted_config(planted_dir, feature_cache, run_dir, *overrides, "train.epochs=2")
    gnnrec.fit(first)
    resumed = planted_config(planted_dir, feature_cache, run_dir, *overrides, "train.epochs=3")
    metrics = gnnrec.fit(resumed)  # resumes: the same MLflow run goes on
    client = MlflowClient(tracking_uri=str(store))
    (run,) = client.search_runs([client.get_experiment_by_name("planted").experiment_id])
    assert run.info.run_id == (run_dir / "mlflow_run_id").read_text().strip()
    assert run.data.params["train.lr"] == "0.02" and run.data.params["model.name"] == "lightgcn"
    history = client.get_metric_history(run.info.run_id, "valid_recall_at_20")
    rows = _history(run_dir)
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([r["valid_recall@20"] for r in rows])
    assert run.data.metrics["test_recall_at_20"] == pytest.approx(metrics["recall@20"])
    assert run.info.status == "FINISHED"
