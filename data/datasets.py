"""The dataset registry: a name in ``data.dataset`` -> the function that loads it.

A loader module registers itself with :func:`register_dataset`; adding a dataset is that one
file (imported by ``gnnrec/data/__init__.py``, or by your own code before the config is read)
plus its tests. A dataset's own settings are a keyword-only dataclass (``options``), filled
from the ``[data.options]`` table and validated like every other config section.

A loader takes the run's :class:`~gnnrec.data.config.DataConfig` and the resolved local path
(None when the dataset needs none) and returns the graph, plus its split when the files define
one (else None: the configured seeded split is drawn).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gnnrec.common.log import get_logger
from gnnrec.common.typed_fields import checked_fields
from gnnrec.data.edge_weights import check_weight_source, pair_counts
from gnnrec.data.splits import Split, split_interactions
from gnnrec.data.textgraph import TextGraph

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig

log = get_logger(__name__)

Loader = Callable[["DataConfig", "Path | None"], "tuple[TextGraph, Split | None]"]


@dataclass(frozen=True)
class DatasetSpec:
    """``load``: the loader; ``options``: the dataclass of ``[data.options]`` (None: no
    options); ``needs_path``: whether ``data.path`` must be given."""

    name: str
    load: Loader
    options: type | None = None
    needs_path: bool = True


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str, *, options: type | None = None, needs_path: bool = True
) -> Callable[[Loader], Loader]:
    """Decorator: registers ``load`` under ``name`` (a name taken twice is an error)."""

    def register(load: Loader) -> Loader:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        DATASETS[name] = DatasetSpec(name, load, options, needs_path)
        return load

    return register


def dataset_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def load_dataset(cfg: DataConfig) -> tuple[TextGraph, Split]:
    """The TextGraph of ``cfg.dataset`` and its split: the dataset's own, or a seeded one."""
    from gnnrec.data.sources import resolve_source

    spec = dataset_spec(cfg.dataset)
    if spec.needs_path and not cfg.path:
        raise ValueError(f"dataset {cfg.dataset!r} needs data.path (--set data.path=...)")
    path = resolve_source(cfg.path, cfg.sha256 or None) if cfg.path else None
    graph, split = spec.load(cfg, path)
    weight = cfg.edge_weight_spec
    check_weight_source(graph, weight)
    kept = graph.interactions.last_of_each_pair()
    duplicates = len(graph.interactions) - len(kept)
    if weight.source == "count":  # a collapsed pair weighs its rows; rows kept weigh 1 each
        inter = graph.interactions
        collapse = bool(duplicates) and split is None
        inter.weight = pair_counts(inter) if collapse else np.ones(len(inter), np.float32)
    if duplicates and split is None:
        # A pair seen twice would land in train and test at once, and its test copy would be
        # masked as a training positive: keep one (the latest) and say so.
        graph.interactions = graph.interactions.subset(kept)
        log.warning(
            "%s: %d duplicate user-item interactions collapsed (the latest of each pair kept)",
            graph.name,
            duplicates,
        )
    elif duplicates:
        log.warning(
            "%s: %d duplicate user-item interactions (kept: the files fix the split)",
            graph.name,
            duplicates,
        )
    if split is None:
        split = split_interactions(
            graph,
            cfg.split,
            test_fraction=cfg.test_fraction,
            valid_fraction=cfg.valid_fraction,
            temporal_k=cfg.temporal_k,
            cold_item_fraction=cfg.cold_item_fraction,
            new_user_fraction=cfg.new_user_fraction,
            seed=cfg.seed,
        )
    for part in ("train", "test"):
        if len(getattr(split, part)) == 0:
            raise ValueError(
                f"dataset {graph.name!r}: the {split.name} split left no {part} interactions "
                f"({len(graph.interactions)} interactions, {graph.num_users} users); use more "
                "data or another data.test_fraction / data.split"
            )
    return graph, split


def build_options(spec: DatasetSpec, values: dict[str, Any]) -> Any:
    """The typed options of ``spec`` from a ``[data.options]`` table, errors naming the key."""
    if spec.options is None:
        if values:
            raise ValueError(f"data.options: dataset {spec.name!r} takes no options")
        return None
    try:
        return spec.options(**checked_fields(spec.options, values, "data.options"))
    except TypeError as err:
        known = sorted(spec.options.__dataclass_fields__)
        raise ValueError(f"data.options for {spec.name!r}: {err}; known: {known}") from None
