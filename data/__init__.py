"""Datasets, splits and graph storage: raw tables -> :class:`TextGraph` -> :class:`GraphStore`."""

from gnnrec.data.errors import DataError
from gnnrec.data.graph_store import CSR, GraphStore
from gnnrec.data.lightgcn_format import load_lightgcn_split
from gnnrec.data.movielens import load_ml_1m, load_ml_100k, load_ml_latest_small
from gnnrec.data.splits import SPLITS, Split, split_interactions
from gnnrec.data.tabular import ColumnMapping, load_table
from gnnrec.data.textgraph import Interactions, NodeTable, TextGraph
from gnnrec.data.user_text import user_texts_from_interactions

__all__ = [
    "CSR",
    "SPLITS",
    "ColumnMapping",
    "DataError",
    "GraphStore",
    "Interactions",
    "NodeTable",
    "Split",
    "TextGraph",
    "load_lightgcn_split",
    "load_ml_100k",
    "load_ml_1m",
    "load_ml_latest_small",
    "load_table",
    "split_interactions",
    "user_texts_from_interactions",
]
