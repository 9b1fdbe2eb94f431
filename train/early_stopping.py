"""Model selection: the best validated epoch so far, its weights, and the patience left.

Each validation :meth:`EarlyStopping.update`\\ s it with the epoch's score (higher is better:
Recall@20 or NDCG@20, the negated RMSE or MAE of a rating model; ``eval.select`` names it); an
epoch that does not beat the best counts against ``patience``. The weights kept are copies
taken when an epoch becomes the best (``None``: the model's latest weights, whatever they
become, so nothing is held twice before a validation has chosen, or without validation). The
state goes into every checkpoint under the keys ``best_model``, ``best_score``, ``best_epoch``
and ``bad_epochs``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Snapshot = Callable[[], tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]


@dataclass
class EarlyStopping:
    """``score``/``epoch`` (1-based; -1: none yet) of the best epoch, ``bad_epochs`` since, and
    its weights: ``model`` (a state dict) and ``tables`` (this rank's rows of each sharded
    table), both ``None`` for "the latest"."""

    patience: int
    score: float = -float("inf")
    epoch: int = -1
    bad_epochs: int = 0
    model: dict[str, torch.Tensor] | None = None
    tables: dict[str, torch.Tensor] | None = None

    @property
    def stopped(self) -> bool:
        return self.bad_epochs >= self.patience

    def keep_latest(self, epoch: int) -> None:
        """No validation: epoch ``epoch`` (0-based) is the best, its weights the latest."""
        self.score, self.epoch, self.bad_epochs = 0.0, epoch + 1, 0
        self.model = self.tables = None

    def update(self, epoch: int, score: float, snapshot: Snapshot) -> None:
        """Epoch ``epoch`` (0-based) validated at ``score``: the best when higher than the best
        so far (``snapshot()`` copies its weights, dense and table rows), else one bad epoch."""
        if score > self.score:
            self.model, self.tables = snapshot()
            self.score, self.epoch, self.bad_epochs = score, epoch + 1, 0
        else:
            self.bad_epochs += 1

    def state(self, latest: dict[str, torch.Tensor]) -> dict:
        """The checkpoint's keys (``latest``: the model's current state dict, saved as the best
        weights while no copy is kept)."""
        return {
            "best_model": latest if self.model is None else self.model,
            "best_score": self.score,
            "best_epoch": self.epoch,
            "bad_epochs": self.bad_epochs,
        }

    @classmethod
    def restore(cls, state: dict, patience: int, tables: dict[str, torch.Tensor]) -> EarlyStopping:
        """From a checkpoint's keys; ``tables``: this rank's rows of the best table weights."""
        return cls(
            patience,
            state["best_score"],
            state["best_epoch"],
            state["bad_epochs"],
            state["best_model"],
            tables,
        )
