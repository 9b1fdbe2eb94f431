"""The ``[track]`` section and the trackers it switches on (TensorBoard, MLflow), each a
:class:`~gnnrec.train.callbacks.Callback`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gnnrec.common.typed_fields import check_fields
from gnnrec.train.callbacks import Callback


@dataclass(kw_only=True)
class TrackConfig:
    """``[track]``: where a run also reports itself. ``tensorboard``: TensorBoard event files
    in ``run_dir/tensorboard`` (``tensorboardX``); ``mlflow_uri``: an MLflow tracking URI (a
    local folder, ``sqlite:///...``, ``http://...``) that gets the run's parameters, every
    epoch's metrics and the test metrics, in the experiment ``mlflow_experiment``."""

    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {"tensorboard", "mlflow_uri", "mlflow_experiment"}
    )

    tensorboard: bool = False
    mlflow_uri: str = ""
    mlflow_experiment: str = "gnnrec"

    def __post_init__(self) -> None:
        check_fields(self)
        if self.mlflow_uri and not self.mlflow_experiment.strip():
            raise ValueError("track.mlflow_experiment must name an experiment")


def trackers(config: TrackConfig) -> list[Callback]:
    """The built-in trackers ``config`` switches on (each library imported only then)."""
    found: list[Callback] = []
    if config.tensorboard:
        from gnnrec.train.tensorboard_writer import TensorBoardWriter

        found.append(TensorBoardWriter())
    if config.mlflow_uri:
        from gnnrec.train.mlflow_writer import MLflowWriter

        found.append(MLflowWriter(config.mlflow_uri, config.mlflow_experiment))
    return found
