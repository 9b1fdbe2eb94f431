"""The LightGCN split format: ``train.txt`` and ``test.txt``, one line per user,
``user item item ...`` with integer ids. The files fix the split; items and users have no text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gnnrec.data.csv_rows import parse_int, read_text
from gnnrec.data.datasets import register_dataset
from gnnrec.data.errors import DataError
from gnnrec.data.splits import Split, random_holdout
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig


def _read_lists(path: Path) -> list[tuple[int, int, list[int]]]:
    rows = []
    for line_no, line in enumerate(read_text(path).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        ids = [parse_int(f, "id", path, line_no) for f in fields]
        if min(ids) < 0:
            raise DataError("ids must be non-negative integers", path, line_no)
        rows.append((line_no, ids[0], ids[1:]))
    return rows


def load_lightgcn_split(
    path: str | Path, valid_fraction: float = 0.0, seed: int = 0
) -> tuple[TextGraph, Split]:
    """A TextGraph over the ids the files name (``0..max`` when none is missing) and the split
    the files define.

    A ``valid_fraction`` > 0 carves a per-user validation set out of ``train.txt``.
    """
    folder = Path(path)
    parts = {name: _read_lists(folder / f"{name}.txt") for name in ("train", "test")}
    users, items, source = [], [], []
    for name, rows in parts.items():
        for _, user, item_list in rows:
            users.extend([user] * len(item_list))
            items.extend(item_list)
            source.extend([name == "test"] * len(item_list))
    # Nodes are the ids present (in increasing order: 0..n-1 when none is missing), so an id
    # far beyond the others allocates nothing and adds no phantom node.
    user_ids, user_index = np.unique(np.asarray(users, dtype=np.int64), return_inverse=True)
    item_ids, item_index = np.unique(np.asarray(items, dtype=np.int64), return_inverse=True)
    inter = Interactions(user_index, item_index, np.ones(len(users)), np.zeros(len(users)))
    graph = TextGraph(
        folder.name,
        NodeTable([str(u) for u in user_ids.tolist()]),
        NodeTable([str(i) for i in item_ids.tolist()]),
        inter,
    )
    is_test = np.asarray(source, dtype=bool)
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    valid = np.zeros(0, np.int64)
    if valid_fraction > 0:
        train, valid = random_holdout(
            train, inter.user, valid_fraction, np.random.default_rng(seed)
        )
    return graph, Split("predefined", train, valid, test)


@register_dataset("lightgcn")
def _load_lightgcn(cfg: DataConfig, path: Path | None) -> tuple[TextGraph, Split]:
    """The files' own split; ``data.valid_fraction`` of ``train.txt`` validates."""
    return load_lightgcn_split(path, cfg.valid_fraction, cfg.seed)
