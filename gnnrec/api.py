"""The run-level Python API: what the CLI does, as functions. Every argument is checked (type
and value) before any work, with the CLI's wording and these functions' own parameter names.

>>> import gnnrec
>>> config = gnnrec.load_config(recipe="ml_latest_small_cpu", overrides=["train.epochs=2"])
>>> metrics = gnnrec.fit(config)                        # writes config.run_dir
>>> gnnrec.recommend(config.run_dir, k=5)["1"][:2]      # user "1": [(item id, score), ...]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gnnrec.common.arguments import (
    check_text,
    flag_argument,
    id_list,
    path_argument,
    positive_int,
)
from gnnrec.config import RunConfig, config_from_dict
from gnnrec.config import load_config as _load_file
from gnnrec.recipes import RECIPES

if TYPE_CHECKING:
    from gnnrec.serve.handle import RunHandle
    from gnnrec.serve.item_index import IndexConfig
    from gnnrec.train.callbacks import Callback


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    recipe: str = "ml_latest_small_cpu",
) -> RunConfig:
    """A validated :class:`RunConfig`: the named ``recipe``, then the TOML file ``path``, then
    ``overrides`` (``"section.key=value"``, values in TOML syntax)."""
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    path = None if path is None else path_argument(path, "path")
    if overrides is not None:
        if isinstance(overrides, str) or not isinstance(overrides, list | tuple):
            raise TypeError(
                f"overrides must be a list of 'section.key=value' strings, got "
                f"{type(overrides).__name__} {overrides!r}"
            )
        if not all(isinstance(item, str) for item in overrides):
            raise TypeError(f"overrides must hold strings, got {overrides!r}")
        overrides = list(overrides)
    return _load_file(path, overrides, base=RECIPES[recipe]())


def fit(config: RunConfig, callbacks: Sequence[Callback] = ()) -> dict:
    """Trains (or resumes) ``config`` in ``config.run_dir`` and returns its test metrics (``fit``,
    not ``train``: ``gnnrec.train`` is the training subpackage). The config is validated again
    first, so one changed in place after loading is held to the same rules. ``callbacks``:
    :class:`gnnrec.Callback` hooks that see every epoch and may stop training
    (:mod:`gnnrec.train.callbacks`)."""
    from gnnrec.run import train_run

    if not isinstance(config, RunConfig):
        raise TypeError(
            f"config must be a RunConfig (from gnnrec.load_config), got {type(config).__name__}"
        )
    return train_run(config_from_dict(dataclasses.asdict(config)), callbacks=callbacks)


def evaluate(run_dir: str | Path, allow_data_change: bool = False) -> dict:
    """Recomputes a trained run's test metrics (and rewrites its ``metrics.json``); data other
    than the run trained on is refused unless ``allow_data_change``."""
    from gnnrec.run import evaluate_run

    return evaluate_run(
        path_argument(run_dir, "run_dir"), flag_argument(allow_data_change, "allow_data_change")
    )


def load(
    run_dir: str | Path,
    allow_data_change: bool = False,
    index: str | IndexConfig | None = None,
) -> RunHandle:
    """A finished run held in memory (:class:`~gnnrec.serve.handle.RunHandle`): recommend for
    known users, new users from their items or text, similar items and users, and fold in new
    interactions, without reloading anything. ``index`` (``"hnsw"``, ``"ivf"``, ``"flat"`` or
    an :class:`~gnnrec.serve.item_index.IndexConfig`): rank through a faiss index of the items
    instead of scoring every item."""
    from gnnrec.serve.handle import load as load_handle

    run_dir = path_argument(run_dir, "run_dir")
    allow = flag_argument(allow_data_change, "allow_data_change")
    return load_handle(run_dir, allow, _index_config(index))


def _index_config(index: object) -> IndexConfig | None:
    from gnnrec.serve.item_index import IndexConfig

    if index is None or isinstance(index, IndexConfig):
        return index
    if not isinstance(index, str):
        raise TypeError(
            f"index must be 'hnsw', 'ivf', 'flat' or an IndexConfig, got {type(index).__name__}"
        )
    return IndexConfig(kind=index)


def recommend(
    run_dir: str | Path,
    k: int = 10,
    users: list[str] | None = None,
    allow_data_change: bool = False,
) -> dict[str, list[tuple[str, float]]]:
    """Top-``k`` ``(item_id, score)`` per user id (training positives excluded; fewer than
    ``k`` when a user has fewer unseen items), for ``users`` (a list of ids as in the data) or
    every user. Loads the run each call: hold it with :func:`load` to ask more than once."""
    run_dir, k = path_argument(run_dir, "run_dir"), positive_int(k, "k")
    chosen = id_list(users, "users")
    handle = load(run_dir, allow_data_change)
    try:
        return handle.recommend(list(handle.user_ids) if chosen is None else chosen, k)
    finally:
        handle.close()


def recommend_for_text(run_dir: str | Path, text: str, k: int = 10) -> list[tuple[str, str, float]]:
    """Top-``k`` ``(item_id, title, score)`` for a new user known only by ``text``."""
    run_dir, k = path_argument(run_dir, "run_dir"), positive_int(k, "k")
    check_text(text, "text")
    handle = load(run_dir)
    try:
        return [(i, handle.title(i), s) for i, s in handle.recommend_for_text(text, k)]
    finally:
        handle.close()


def export(run_dir: str | Path, output: str | Path | None = None, index: str | None = None) -> Path:
    """Writes user and item embeddings (``.npy``), their ids and each user's seen items for
    serving, with ``index`` (``"hnsw"``, ``"ivf"``, ``"flat"`` or an ``IndexConfig``) a faiss
    index of the items; see :func:`gnnrec.run.export_embeddings`."""
    from gnnrec.run import export_embeddings

    run_dir = path_argument(run_dir, "run_dir")
    output = None if output is None else path_argument(output, "output")
    return export_embeddings(run_dir, output, _index_config(index))
