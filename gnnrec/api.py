"""The run-level Python API: what the CLI does, as functions. Every argument is checked (type
and value) before any work, with the CLI's wording and these functions' own parameter names.

>>> import gnnrec
>>> config = gnnrec.load_config(recipe="ml_latest_small_cpu", overrides=["train.epochs=2"])
>>> metrics = gnnrec.fit(config)                        # writes config.run_dir
>>> gnnrec.recommend(config.run_dir, k=5)["1"][:2]      # user "1": [(item id, score), ...]
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from gnnrec.config import RunConfig, config_from_dict
from gnnrec.config import load_config as _load_file
from gnnrec.recipes import RECIPES


def _path(value: object, name: str) -> Path:
    if isinstance(value, bytes) or not isinstance(value, str | os.PathLike):
        raise TypeError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")
    if not str(value).strip():
        raise ValueError(f"{name} must name a file or folder, got {str(value)!r}")
    return Path(value)


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def _strings(values: object, name: str) -> list[str] | None:
    """A list of ids (strings, or integers written as the data writes them)."""
    if values is None:
        return None
    if not isinstance(values, list | tuple | set | frozenset | np.ndarray):
        raise TypeError(
            f"{name} must be a list of ids, got {type(values).__name__} {values!r} (for one "
            f"user: {name}=[{values!r}])"
        )
    ids = list(values)
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, str | int | np.integer):
            raise TypeError(f"{name} holds {type(value).__name__} {value!r}; ids are str or int")
    return [str(value) for value in ids]


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    recipe: str = "ml_latest_small_cpu",
) -> RunConfig:
    """A validated :class:`RunConfig`: the named ``recipe``, then the TOML file ``path``, then
    ``overrides`` (``"section.key=value"``, values in TOML syntax)."""
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    path = None if path is None else _path(path, "path")
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


def fit(config: RunConfig) -> dict:
    """Trains (or resumes) ``config`` in ``config.run_dir`` and returns its test metrics (``fit``,
    not ``train``: ``gnnrec.train`` is the training subpackage). The config is validated again
    first, so one changed in place after loading is held to the same rules."""
    from gnnrec.run import train_run

    if not isinstance(config, RunConfig):
        raise TypeError(
            f"config must be a RunConfig (from gnnrec.load_config), got {type(config).__name__}"
        )
    return train_run(config_from_dict(dataclasses.asdict(config)))


def evaluate(run_dir: str | Path, allow_data_change: bool = False) -> dict:
    """Recomputes a trained run's test metrics (and rewrites its ``metrics.json``); data other
    than the run trained on is refused unless ``allow_data_change``."""
    from gnnrec.run import evaluate_run

    return evaluate_run(_path(run_dir, "run_dir"), _flag(allow_data_change, "allow_data_change"))


def recommend(
    run_dir: str | Path,
    k: int = 10,
    users: list[str] | None = None,
    allow_data_change: bool = False,
) -> dict[str, list[tuple[str, float]]]:
    """Top-``k`` ``(item_id, score)`` per user id (training positives excluded; fewer than
    ``k`` when a user has fewer unseen items), for ``users`` (a list of ids as in the data) or
    every user."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from gnnrec.data.columns import arrow_strings
    from gnnrec.outputs import embeddings
    from gnnrec.run import load_run
    from gnnrec.train.recommend import top_k_items

    run_dir, k = _path(run_dir, "run_dir"), _positive(k, "k")
    chosen_ids = _strings(users, "users")
    allow = _flag(allow_data_change, "allow_data_change")
    config, prepared, model = load_run(run_dir, allow_data_change=allow)
    graph, data = prepared.graph, prepared.data
    known = arrow_strings(graph.users.ids)
    chosen = list(graph.users.ids) if chosen_ids is None else list(dict.fromkeys(chosen_ids))
    found = pc.index_in(pa.array(chosen, pa.string()), value_set=known)
    if found.null_count:
        unknown = [u for u, row in zip(chosen, found.is_null().to_pylist()) if row][:5]
        raise ValueError(f"unknown user id(s) {unknown} in {run_dir}")
    rows = np.asarray(found.to_pylist(), dtype=np.int64)
    local = np.full(data.num_users, -1, dtype=np.int64)  # row of each chosen user in the batch
    local[rows] = np.arange(rows.size)
    train_users, train_items = (np.asarray(a, dtype=np.int64) for a in data.train[:2])
    chosen_pairs = local[train_users] >= 0
    exclude = (local[train_users[chosen_pairs]], train_items[chosen_pairs])
    z = embeddings(prepared, model, config)
    users_z = z[torch.from_numpy(rows)]
    items, scores = top_k_items(users_z, z[data.num_users :], k, exclude, score=model.scores)
    return {  # a user with fewer than k unseen items gets those (seen ones score -inf)
        user: [
            (graph.items.ids[int(i)], float(s))
            for i, s in zip(items[n], scores[n])
            if s != -torch.inf
        ]
        for n, user in enumerate(chosen)
    }


def recommend_for_text(run_dir: str | Path, text: str, k: int = 10) -> list[tuple[str, str, float]]:
    """Top-``k`` ``(item_id, title, score)`` for a new user known only by ``text``."""
    from gnnrec.run import load_run
    from gnnrec.run import recommend_for_text as rank_for_text

    run_dir, k = _path(run_dir, "run_dir"), _positive(k, "k")
    if not isinstance(text, str):
        raise TypeError(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("text is empty: describe the new user in a few words")
    config, prepared, model = load_run(run_dir)
    return rank_for_text(prepared, model, config, text, k)


def export(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Writes user and item embeddings (``.npy``) and their ids for serving; see
    :func:`gnnrec.run.export_embeddings`."""
    from gnnrec.run import export_embeddings

    run_dir = _path(run_dir, "run_dir")
    return export_embeddings(run_dir, None if output is None else _path(output, "output"))
