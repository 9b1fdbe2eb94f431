"""TensorBoard event files of a run (``track.tensorboard``), written with ``tensorboardX``:
``train/loss`` and ``train/seconds`` every epoch, ``valid/<metric>`` on validated epochs (step
= epoch; ``valid/recall_at_20``: :func:`~gnnrec.train.callbacks.metric_name`), the
configuration as text at the start and ``test/<metric>`` at the end (step = the best epoch),
in ``run_dir/tensorboard``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gnnrec.train.callbacks import Callback, metric_name

FOLDER = "tensorboard"


class TensorBoardWriter(Callback):
    def __init__(self) -> None:
        self.writer = None
        self.run_dir: Path | None = None

    def _open(self, run_dir: Path):
        if self.writer is None:
            from tensorboardX import SummaryWriter

            self.run_dir = Path(run_dir)
            self.writer = SummaryWriter(logdir=str(self.run_dir / FOLDER))
        return self.writer

    def on_train_begin(self, config: dict[str, Any], run_dir: Path) -> None:
        writer = self._open(run_dir)
        writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)
        writer.flush()

    def on_epoch_end(self, row: dict[str, Any]) -> bool | None:
        if self.writer is None:
            return None
        epoch = int(row["epoch"])
        self.writer.add_scalar("train/loss", row["loss"], epoch)
        self.writer.add_scalar("train/seconds", row["seconds"], epoch)
        for key, value in row.items():
            if key.startswith("valid_") and isinstance(value, int | float):
                self.writer.add_scalar(f"valid/{metric_name(key[len('valid_') :])}", value, epoch)
        self.writer.flush()
        return None

    def on_train_end(self, metrics: dict[str, Any], run_dir: Path) -> None:
        writer = self._open(run_dir)
        step = int(metrics.get("best_epoch", 0))
        for key, value in metrics.items():
            if isinstance(value, float):
                writer.add_scalar(f"test/{metric_name(key)}", value, step)
        writer.close()
        self.writer = None
