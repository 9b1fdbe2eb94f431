"""Named recipes: functions that return a complete :class:`RunConfig`."""

from __future__ import annotations

from gnnrec.config import DataConfig, RunConfig
from gnnrec.train.model import ModelConfig
from gnnrec.train.trainer import TrainConfig


def ml_latest_small_cpu() -> RunConfig:
    """The demo: text-feature GCN on the bundled ml-latest-small, random 80/20 split, 2 cores."""
    return RunConfig(
        run_dir="runs/demo",
        data=DataConfig(dataset="ml-latest-small"),
        model=ModelConfig(hidden=64, layers=3),
        train=TrainConfig(epochs=30, batch_size=2048, lr=5e-3, patience=5),
    )


RECIPES = {"ml_latest_small_cpu": ml_latest_small_cpu}
