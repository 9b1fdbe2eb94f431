"""The settings of ``gnnrec update`` (:mod:`gnnrec.update`)."""

from __future__ import annotations

from dataclasses import dataclass

from gnnrec.common.typed_fields import check_fields


@dataclass(kw_only=True)
class UpdateConfig:
    """How an update trains: ``epochs`` over the new interactions plus ``replay`` times as many
    earlier ones, Adam's step size ``lr_scale`` times the run's ``train.lr``; ``validate``: keep
    the update epoch that scores best on the run's validation pairs (which are older than the
    update) instead of the last; ``train_shared``: train the weights every node shares too (a
    text projection, layer weights, an MLP) and every ID row, as training does.

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
    lr_scale: float = 4.0
    validate: bool = False
    train_shared: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        if self.epochs < 1:
            raise ValueError(f"update epochs must be >= 1, got {self.epochs}")
        if self.replay < 0:
            raise ValueError(f"update replay must be >= 0, got {self.replay}")
        if self.lr_scale <= 0:
            raise ValueError(f"update lr_scale must be > 0, got {self.lr_scale}")
