"""What training reads, built from a dataset and its split: the training graph, the node
features and the interaction pairs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gnnrec.data.edge_weights import EdgeWeight, edge_weights
from gnnrec.data.graph_store import GraphStore
from gnnrec.data.hetero import TypedGraph
from gnnrec.data.splits import Split
from gnnrec.data.textgraph import TextGraph

Pairs = tuple[np.ndarray, np.ndarray, np.ndarray]  # users [E], items [E] (item-local), ratings [E]


@dataclass
class TrainingData:
    """The training graph, node features ``[U + I + K, F]`` (or None; ``K`` entity nodes
    after the items), the training interactions and the validation pairs (item ids are
    item-local)."""

    graph: GraphStore
    features: torch.Tensor | None
    train: Pairs
    valid: Pairs

    @property
    def num_users(self) -> int:
        return self.graph.num_users

    @property
    def num_items(self) -> int:
        return self.graph.num_items

    @property
    def num_entities(self) -> int:
        return self.graph.schema.num_entities

    @property
    def num_relations(self) -> int:
        return self.graph.schema.num_relations

    @property
    def feature_dim(self) -> int:
        return 0 if self.features is None else self.features.shape[1]


def split_pairs(graph: TextGraph, index: np.ndarray) -> Pairs:
    """``(users, items, ratings)`` of the interactions ``index`` (e.g. ``split.test``)."""
    inter = graph.interactions
    return inter.user[index], inter.item[index], inter.rating[index]


def training_data(
    graph: TextGraph,
    split: Split,
    edge_weight: EdgeWeight | None = None,
    typed: bool = False,
) -> TrainingData:
    """The training graph (training interactions, weighted by ``edge_weight`` when given,
    plus any user–user/item–item edges and entity relations; each edge's relation kept when
    ``typed``), the node features ``[U + I + K, F]`` float32 from the graph's slots, and the
    train/validation pairs."""
    train = split_pairs(graph, split.train)
    weight = None if edge_weight is None else edge_weights(graph, edge_weight)
    store = GraphStore.bipartite(
        train[0],
        train[1],
        graph.num_users,
        graph.num_items,
        graph.user_edges,
        graph.item_edges,
        weight=None if weight is None else weight[split.train],
        user_edge_weight=graph.user_edge_weight,
        item_edge_weight=graph.item_edge_weight,
        schema=graph.schema,
        relation_edges=graph.relation_edges,
    )
    store.csr.relation = TypedGraph(store).relation if typed else None
    features = None
    if graph.user_features is not None and graph.item_features is not None:
        parts = [graph.user_features, graph.item_features]
        if graph.num_entities:
            if graph.entity_features is None:
                raise ValueError("the graph has entity nodes but no entity_features")
            parts.append(graph.entity_features)
        features = torch.cat(parts).float()
    return TrainingData(store, features, train, split_pairs(graph, split.valid))


def seen_items(
    users: np.ndarray, items: np.ndarray, num_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each user's distinct item rows, sorted, as ``(indptr [U + 1], items)``."""
    users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    keep = np.ones(len(users), dtype=bool)
    keep[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    users, items = users[keep], items[keep]
    return np.searchsorted(users, np.arange(num_users + 1)), items
