"""An MLflow run of a training run (``track.mlflow_uri``): the configuration as flattened
parameters (``train.lr``, ``model.hidden``, ...), every epoch's ``loss``, ``seconds`` and
validation metrics (step = epoch; :func:`~gnnrec.train.callbacks.metric_name`), and the
test metrics at the end (``test_recall_at_20``, ...). The MLflow run's id is kept in
``run_dir/mlflow_run_id``, so a resumed run continues the same MLflow run.

A local folder as the URI is MLflow's file store, which MLflow 3 keeps in maintenance mode
behind the ``MLFLOW_ALLOW_FILE_STORE`` switch: gnnrec turns it on for such a URI."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gnnrec.common.atomic_files import write_text_atomic
from gnnrec.train.callbacks import Callback, metric_name

RUN_ID_FILE = "mlflow_run_id"


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"train.lr": "0.005", ...}``: the nested configuration as MLflow parameters."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out |= flat(value, f"{name}.")
        else:
            out[name] = str(value)[:6000]  # (MLflow's limit on a parameter's value)
    return out


class MLflowWriter(Callback):
    def __init__(self, uri: str, experiment: str):
        self.uri, self.experiment = uri, experiment
        self.client, self.run_id = None, None

    def _client(self):
        if self.client is None:
            from mlflow.tracking import MlflowClient

            if urlparse(self.uri).scheme in ("", "file"):
                os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            self.client = MlflowClient(tracking_uri=self.uri)
        return self.client

    def _run(self, run_dir: Path) -> str:
        """The MLflow run of ``run_dir``: the one its id file names, else a new one."""
        if self.run_id is not None:
            return self.run_id
        client, saved = self._client(), Path(run_dir) / RUN_ID_FILE
        if saved.is_file():
            self.run_id = saved.read_text().strip()
            return self.run_id
        found = client.get_experiment_by_name(self.experiment)
        experiment = found.experiment_id if found else client.create_experiment(self.experiment)
        self.run_id = client.create_run(experiment, run_name=Path(run_dir).name).info.run_id
        write_text_atomic(saved, self.run_id)
        return self.run_id

    def on_train_begin(self, config: dict[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Param

        run_id = self._run(run_dir)
        client = self._client()
        logged = client.get_run(run_id).data.params
        params = [Param(k, v) for k, v in flat(config).items() if k not in logged]
        for start in range(0, len(params), 100):  # (MLflow takes 100 a batch)
            client.log_batch(run_id, params=params[start : start + 100])

    def on_epoch_end(self, row: dict[str, Any]) -> bool | None:
        if self.run_id is None:
            return None
        from mlflow.entities import Metric

        now, epoch = int(time.time() * 1000), int(row["epoch"])
        metrics = [
            Metric(metric_name(k), float(v), now, epoch)
            for k, v in row.items()
            if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
        ]
        self._client().log_batch(self.run_id, metrics=metrics)
        return None

    def on_train_end(self, metrics: dict[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Metric

        run_id, now = self._run(run_dir), int(time.time() * 1000)
        step = int(metrics.get("best_epoch", 0))
        logged = [
            Metric(f"test_{metric_name(k)}", v, now, step)
            for k, v in metrics.items()
            if isinstance(v, float)
        ]
        client = self._client()
        client.log_batch(run_id, metrics=logged)
        client.set_terminated(run_id)
