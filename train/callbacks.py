"""Hooks into a training run.

A :class:`Callback` sees the run start (its configuration), every epoch's row as
``metrics.jsonl`` holds it (``epoch``, ``loss``, ``seconds`` and, on validated epochs,
``valid_<metric>`` for every validation metric) and the test metrics at the end; returning
True from :meth:`Callback.on_epoch_end` stops training after that epoch (its checkpoint is
saved; a scheduler such as Ray Tune's ASHA stops a trial this way), and the run ends as an
early-stopped one would: the best validated weights are evaluated and written.

``gnnrec.fit(config, callbacks=[...])`` passes them to the run; the built-in trackers
(``track.tensorboard``, ``track.mlflow_uri``: :mod:`gnnrec.train.trackers`) are callbacks
too. On Ray Train workers the callbacks run in rank 0's worker (they are pickled to it), the
end of the run on the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class Callback:
    """A training run's hooks, each optional: a subclass overrides what it needs."""

    def on_train_begin(self, config: dict[str, Any], run_dir: Path) -> None:
        """Before the first epoch (of this process's run: a resumed run calls it again);
        ``config``: the run's whole configuration as a dict."""

    def on_epoch_end(self, row: dict[str, Any]) -> bool | None:
        """After each epoch, its ``metrics.jsonl`` row; True stops training after it."""
        return None

    def on_train_end(self, metrics: dict[str, Any], run_dir: Path) -> None:
        """After the test evaluation, ``metrics.json``'s content (on the driver for a run on
        Ray workers)."""


def metric_name(key: str) -> str:
    """A gnnrec metric's name as trackers accept it: ``recall@20`` -> ``recall_at_20``
    (MLflow refuses ``@``, TensorBoard replaces it)."""
    return key.replace("@", "_at_")


def check_callbacks(callbacks: Sequence[Any]) -> list[Callback]:
    """``callbacks`` as a list, each a :class:`Callback` (``TypeError`` naming the first
    that is not)."""
    for n, callback in enumerate(callbacks):
        if not isinstance(callback, Callback):
            raise TypeError(
                f"callbacks[{n}] is a {type(callback).__name__}: subclass "
                "gnnrec.Callback (on_train_begin, on_epoch_end, on_train_end)"
            )
    return list(callbacks)


def epoch_ended(callbacks: Sequence[Callback], row: dict[str, Any]) -> bool:
    """Every callback's :meth:`Callback.on_epoch_end` of ``row``; whether any asks to stop."""
    return any([bool(c.on_epoch_end(dict(row))) for c in callbacks])
