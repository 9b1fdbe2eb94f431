"""The settings of ``gnnrec update`` (:mod:`gnnrec.update`)."""

from __future__ import annotations

from dataclasses import dataclass

from gnnrec.common.typed_fields import check_fields

ID_LR_SCALE = 4.0
TEXT_LR_SCALE = 1.0


@dataclass(kw_only=True)
class UpdateConfig:
    """How an update trains: ``epochs`` over the new interactions plus ``replay`` times as many
    earlier ones, Adam's step size ``lr_scale`` times the run's ``train.lr`` (by default 4 for
    a model of ID embeddings alone, 1 for one that reads text: :meth:`step_scale`);
    ``validate``: keep the update epoch that scores best on the run's validation pairs (which
    are older than the update) instead of the last; ``train_shared``: train the weights every
    node shares too (a text projection, layer weights, an MLP) and every ID row, as training
    does.

    By default an update trains only the ID rows of the users and items its interactions name
    (new and replayed), so it moves nothing else: a handful of interactions cannot pull the
    shared weights, and with them every user's ranking, toward themselves (a 4-interaction
    update of the demo's text GCN with every weight trained lost a fifth of its Recall@20, and
    with every ID row trained, a twentieth: Adam moves each row that a gradient reaches through
    the propagation by about its step size, however small the gradient). The defaults were chosen
    on the temporal split of ``gnnrec bench updates`` (bench/README.md, "Incremental updates");
    a version's ``metrics.json`` holds the run's own test split, which shows what an update did
    to the older users."""

    epochs: int = 10
    replay: float = 0.0
    lr_scale: float | None = None
    validate: bool = False
    train_shared: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.epochs < 1:
            raise ValueError(f"update epochs must be >= 1, got {self.epochs}")
        if self.replay < 0:
            raise ValueError(f"update replay must be >= 0, got {self.replay}")
        if self.lr_scale is not None and self.lr_scale <= 0:
            raise ValueError(f"update lr_scale must be > 0, got {self.lr_scale}")

    def step_scale(self, text_features: bool) -> float:
        """``lr_scale``, or its default for the model: 4 with ID embeddings alone, 1 with text
        features (whose new rows a 4x step pushed past what a retrain reaches: NDCG@20 0.89-0.94
        of the retrain's against 0.97-0.98 at 1x on the bench split; ID models reach 0.99 at
        4x)."""
        if self.lr_scale is not None:
            return self.lr_scale
        return TEXT_LR_SCALE if text_features else ID_LR_SCALE
