"""Datasets, splits and graph storage: raw tables -> :class:`TextGraph` -> :class:`GraphStore`.

Importing this package registers the built-in datasets (:mod:`gnnrec.data.datasets`)."""

from gnnrec.data import (  # noqa: F401 (each registers its datasets)
    lastfm,
    lightgcn_format,
    movielens,
    recbole,
    synthetic,
    tabular,
)
from gnnrec.data.config import DataConfig
from gnnrec.data.datasets import DATASETS, load_dataset, register_dataset
from gnnrec.data.errors import DataError
from gnnrec.data.graph_store import CSR, GraphStore
from gnnrec.data.lightgcn_format import load_lightgcn_split
from gnnrec.data.movielens import load_ml_1m, load_ml_100k, load_ml_latest_small
from gnnrec.data.splits import SPLITS, Split, split_interactions
from gnnrec.data.tabular import ColumnMapping, TableOptions, load_table
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph
from gnnrec.data.user_text import node_texts, user_texts_from_interactions

__all__ = [
    "CSR",
    "DATASETS",
    "SPLITS",
    "ColumnMapping",
    "DataConfig",
    "DataError",
    "GraphStore",
    "Interactions",
    "NodeTable",
    "Split",
    "TableOptions",
    "TextGraph",
    "load_dataset",
    "load_lightgcn_split",
    "load_ml_100k",
    "load_ml_1m",
    "load_ml_latest_small",
    "load_table",
    "node_texts",
    "register_dataset",
    "split_interactions",
    "user_texts_from_interactions",
]
