"""The settings of ``gnnrec update`` (:mod:`gnnrec.update`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gnnrec.common.typed_fields import check_fields

ID_LR_SCALE = 4.0
TEXT_LR_SCALE = 1.0
EPOCHS = {"rows": 10, "continue": 1}


@dataclass(kw_only=True)
class UpdateConfig:
    """How an update trains. Two strategies:

    - ``"rows"``: ``epochs`` (10) over the new interactions plus ``replay`` times as many
      earlier ones, training only the ID rows of the users and items those interactions name,
      so that nothing else moves: a handful of interactions cannot pull the shared weights,
      and with them every user's ranking, toward themselves (a 4-interaction update of the
      demo's text GCN with every weight trained on it alone lost a fifth of its Recall@20).
      Its cost follows the update's size. Adam's step is ``lr_scale`` times the run's
      ``train.lr`` (by default 4 for a model of ID embeddings alone, 1 for one that reads text:
      :meth:`step_scale`).
    - ``"continue"``: training continues from the current weights as ``gnnrec train`` runs it,
      every weight, over every training interaction (the earlier ones and the new, each once
      an epoch) for ``epochs`` (1) at the run's step size: the shared weights learn the new
      interactions among all the others. Its cost is an epoch of training, whatever the
      update's size.

    ``"auto"`` (the default) is ``"continue"`` for a model that reads text and ``"rows"`` for
    one of ID embeddings alone: on the temporal split of ``gnnrec bench updates``
    (bench/README.md, "Incremental updates") continuing one epoch brought the text GCN to 0.987
    of a retrain's NDCG@20 (24 seeds not used to choose it), its rows update to 0.963 (16
    seeds; no more than fold-in alone), while LightGCN's rows update reached 0.990 and
    continuing it 0.802. ``validate``: keep the update epoch that
    scores best on the run's validation pairs (older than the update) instead of the last. A
    version's ``metrics.json`` holds the run's own test split, which shows what an update did
    to the older users."""

    strategy: Literal["auto", "rows", "continue"] = "auto"
    epochs: int | None = None  # None: 10 for "rows", 1 for "continue"
    replay: float = 0.0  # "rows" only
    lr_scale: float | None = None
    validate: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"update epochs must be >= 1, got {self.epochs}")
        if not self.replay >= 0:
            raise ValueError(f"update replay must be >= 0, got {self.replay}")
        if self.lr_scale is not None and not self.lr_scale > 0:
            raise ValueError(f"update lr_scale must be > 0, got {self.lr_scale}")
        if self.replay > 0 and self.strategy == "continue":
            raise ValueError(
                "update replay is for the 'rows' strategy: 'continue' trains on every "
                "earlier interaction already"
            )

    def chosen(self, text_features: bool) -> Literal["rows", "continue"]:
        """The strategy for a model with or without text features: ``"auto"`` resolved (to
        ``"rows"`` when ``replay`` is given, which only that strategy reads)."""
        if self.strategy != "auto":
            return self.strategy
        return "continue" if text_features and self.replay == 0 else "rows"

    def epoch_count(self, text_features: bool) -> int:
        """``epochs``, or the chosen strategy's default."""
        return self.epochs or EPOCHS[self.chosen(text_features)]

    def step_scale(self, text_features: bool) -> float:
        """``lr_scale``, or its default: the run's own step (1) when continuing; for the
        ``"rows"`` strategy 4 with ID embeddings alone, 1 with text features (whose new rows
        a 4x step pushed past what a retrain reaches: NDCG@20 0.89-0.94 of the retrain's
        against 0.97-0.98 at 1x on the bench split; ID models reach 0.99 at 4x)."""
        if self.lr_scale is not None:
            return self.lr_scale
        if self.chosen(text_features) == "continue":
            return 1.0
        return TEXT_LR_SCALE if text_features else ID_LR_SCALE
