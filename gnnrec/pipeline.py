"""The pipeline glue: dataset -> split -> text features -> training data.

Every step is deterministic given the config, so ``train``, ``evaluate`` and ``recommend`` can
rebuild the same split and features from a run directory's ``config.toml``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gnnrec.common.log import get_logger
from gnnrec.config import RunConfig
from gnnrec.data import Split, TextGraph, node_texts
from gnnrec.data.textgraph import Interactions
from gnnrec.data.updates import load_updated
from gnnrec.encoders import encode_texts
from gnnrec.models.config import build_model
from gnnrec.models.recommender import Recommender
from gnnrec.train.training_data import TrainingData, split_pairs, training_data

log = get_logger(__name__)


def encode_nodes(graph: TextGraph, split: Split, config: RunConfig, progress: bool = True) -> int:
    """Fills ``graph.user_features`` ``[U, F]``, ``graph.item_features`` ``[I, F]`` and
    ``graph.entity_features`` ``[K, F]`` (float16) unless the model uses no text; returns how many
    texts were encoded now (0 when the cache had them all)."""
    if not config.model.text_features:
        return 0
    if not (graph.users.text_fields or graph.items.text_fields):
        raise ValueError(
            f"dataset {graph.name!r} ({config.data.dataset}) has no user or item text, so "
            "model.text_features would encode strings of ids: set model.text_features = false "
            "(an ID model), or give the data text columns"
        )
    texts = node_texts(graph, split, config.data)
    if not any(texts):
        raise ValueError(f"dataset {graph.name!r} has no text; set model.text_features = false")
    features, encoded = encode_texts(texts, config.encoder, progress)
    U, I = graph.num_users, graph.num_items
    graph.user_features, graph.item_features = features[:U], features[U : U + I]
    graph.entity_features = features[U + I :] if graph.num_entities else None
    return encoded


# models that do not read edge weights, and why
IGNORE_WEIGHTS = {
    "gat": "attention weighs the edges by its own softmax",
    "mf": "it scores without the graph",
    "ncf": "it scores without the graph",
}
INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp")
SPLIT_PARTS = ("train", "valid", "test", "fold_in")


def mapped(array: np.ndarray, path: Path) -> np.ndarray:
    """``array`` written to ``path`` (``.npy``) and memory-mapped back, read-only."""
    np.save(path, array)
    return np.load(path, mmap_mode="r")


@dataclass
class Prepared:
    """A run's dataset, its split and the training data built from them."""

    graph: TextGraph
    split: Split
    data: TrainingData

    @property
    def test(self):
        """The test pairs ``(users, items, ratings)``."""
        return split_pairs(self.graph, self.split.test)

    def spill(self, folder: Path) -> None:
        """Moves the interactions and the split's indices into ``.npy`` files in ``folder``,
        mapped back read-only: the process then holds page cache, which the kernel reclaims,
        instead of private memory (e.g. while Ray workers train beside it). ``folder`` must
        outlive their use."""
        inter = self.graph.interactions
        self.graph.interactions = Interactions(
            *(mapped(getattr(inter, k), folder / f"{k}.npy") for k in INTERACTION_COLUMNS),
            None if inter.weight is None else mapped(inter.weight, folder / "weight.npy"),
        )
        split = self.split
        self.split = Split(
            split.name, *(mapped(getattr(split, k), folder / f"{k}.npy") for k in SPLIT_PARTS)
        )


def data_fingerprint(prepared: Prepared) -> dict:
    """What a run trained on, in a few numbers, one sha256 over the interactions (users, items,
    ratings, timestamps), the node ids and the split, and one over the user and item text: a
    run refuses data that differs (text only when its model reads text)."""
    digest = hashlib.sha256()
    inter, split = prepared.graph.interactions, prepared.split
    for array in (inter.user, inter.item, inter.rating, inter.timestamp):
        digest.update(np.ascontiguousarray(array).tobytes())
    if inter.weight is not None:  # a weight column or counts (unweighted runs: as before)
        digest.update(np.ascontiguousarray(inter.weight).tobytes())
    for ids in (prepared.graph.users.ids, prepared.graph.items.ids):
        digest.update("\n".join(ids).encode())
    for node_type, table in prepared.graph.entities.items():  # (none: as before entities)
        digest.update(f"\0{node_type}\0".encode() + "\n".join(table.ids).encode())
    for part in prepared.graph.relation_edges:
        digest.update(repr(part.relation).encode() + np.ascontiguousarray(part.edges).tobytes())
        if part.weight is not None:
            digest.update(np.ascontiguousarray(part.weight).tobytes())
    for index in (split.train, split.valid, split.test):
        digest.update(np.asarray(index, dtype=np.int64).tobytes())
    text = hashlib.sha256()
    for nodes in (prepared.graph.users, prepared.graph.items, *prepared.graph.entities.values()):
        for name, values in sorted(nodes.text_fields.items()):
            text.update(f"\0{name}\0".encode())
            text.update("\n".join(map(str, values)).encode())
    return {
        "sha256": digest.hexdigest(),
        "text_sha256": text.hexdigest(),
        "dataset": prepared.graph.name,
        "users": prepared.graph.num_users,
        "items": prepared.graph.num_items,
        "interactions": len(inter),
        "split": split.name,
    } | _entity_counts(prepared.graph)


def _entity_counts(graph: TextGraph) -> dict:
    """``entities`` ({type: count}) and ``relations`` ({name: edges}) of a graph that has any."""
    if not graph.entities and not graph.relation_edges:
        return {}
    return {
        "entities": {t: len(table) for t, table in graph.entities.items()},
        "relations": {p.relation.name: int(p.edges.shape[1]) for p in graph.relation_edges},
    }


def prepare(config: RunConfig, progress: bool = True) -> Prepared:
    """Loads, splits (and updates: ``data.updates``) and encodes ``config``'s dataset."""
    graph, split = load_updated(config.data)
    weight = config.data.edge_weight_spec
    if weight.weighted and config.model.name in IGNORE_WEIGHTS:
        log.warning(
            "data.edge_weight = %s has no effect on %s: %s",
            weight,
            config.model.name,
            IGNORE_WEIGHTS[config.model.name],
        )
    encode_nodes(graph, split, config, progress)
    typed = config.model.relations == "typed"
    data = training_data(graph, split, config.data.edge_weight_spec, typed)
    return Prepared(graph, split, data)


def model_for(config: RunConfig, data: TrainingData) -> Recommender:
    """The model of ``config`` sized for ``data``, initialised from ``train.seed`` (with
    ``train.id_optimizer = "rowwise_adagrad"`` the ID table is left for the trainer to draw,
    sharded, or for a checkpoint to fill)."""
    return build_model(
        config.model,
        data.num_users,
        data.num_items,
        data.feature_dim,
        config.train.seed,
        draw_id_table=not config.train.sharded_ids,
        num_entities=data.num_entities,
        num_relations=data.num_relations,
    )
