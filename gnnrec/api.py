"""The run-level Python API: what the CLI does, as functions.

>>> import gnnrec
>>> config = gnnrec.load_config(recipe="ml_latest_small_cpu", overrides=["train.epochs=2"])
>>> metrics = gnnrec.fit(config)                        # writes config.run_dir
>>> gnnrec.recommend(config.run_dir, k=5)["1"][:2]      # user "1": [(item_id, score), ...]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gnnrec.config import RunConfig
from gnnrec.config import load_config as _load_file
from gnnrec.recipes import RECIPES


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    recipe: str = "ml_latest_small_cpu",
) -> RunConfig:
    """A validated :class:`RunConfig`: the named ``recipe``, then the TOML file ``path``, then
    ``overrides`` (``"section.key=value"``, values in TOML syntax)."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    return _load_file(path, overrides, base=RECIPES[recipe]())


def fit(config: RunConfig) -> dict:
    """Trains (or resumes) ``config`` in ``config.run_dir`` and returns its test metrics (``fit``,
    not ``train``: ``gnnrec.train`` is the training subpackage)."""
    from gnnrec.run import train_run

    return train_run(config)


def evaluate(run_dir: str | Path) -> dict:
    """Recomputes a trained run's test metrics (and rewrites its ``metrics.json``)."""
    from gnnrec.run import evaluate_run

    return evaluate_run(run_dir)


def recommend(
    run_dir: str | Path, k: int = 10, users: list[str] | None = None
) -> dict[str, list[tuple[str, float]]]:
    """Top-``k`` ``(item_id, score)`` per user id (training positives excluded), for ``users``
    (ids as in the data, as strings) or every user."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from gnnrec.data.columns import arrow_strings
    from gnnrec.outputs import embeddings
    from gnnrec.run import load_run
    from gnnrec.train.recommend import top_k_items

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    config, prepared, model = load_run(run_dir)
    graph, data = prepared.graph, prepared.data
    known = arrow_strings(graph.users.ids)
    chosen = list(graph.users.ids) if users is None else list(dict.fromkeys(map(str, users)))
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
    if k < 1 or not text.strip():
        raise ValueError("recommend_for_text needs a non-empty text and k >= 1")
    from gnnrec.run import load_run
    from gnnrec.run import recommend_for_text as rank_for_text

    config, prepared, model = load_run(run_dir)
    return rank_for_text(prepared, model, config, text, k)


def export(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Writes user and item embeddings (``.npy``) and their ids for serving; see
    :func:`gnnrec.run.export_embeddings`."""
    from gnnrec.run import export_embeddings

    return export_embeddings(run_dir, output)
