"""The pipeline glue: dataset -> split -> text features -> training graph -> model.

Every step is deterministic given the config, so ``train``, ``evaluate`` and ``recommend`` can
rebuild the same split and features from a run directory's ``config.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gnnrec.config import DataConfig, RunConfig
from gnnrec.data import (
    ColumnMapping,
    GraphStore,
    Split,
    TextGraph,
    load_lightgcn_split,
    load_ml_1m,
    load_ml_100k,
    load_ml_latest_small,
    load_table,
    split_interactions,
    user_texts_from_interactions,
)
from gnnrec.data.sources import DEFAULT_CACHE, resolve_source
from gnnrec.data.synthetic import load_synthetic
from gnnrec.data.user_text import node_table_texts
from gnnrec.encoders import EncoderConfig, FeatureCache, encoder_key, make_encoder
from gnnrec.encoders.cache import text_set_hash
from gnnrec.train.model import GCNRecommender
from gnnrec.train.trainer import TrainingData


def load_dataset(cfg: DataConfig) -> tuple[TextGraph, Split]:
    """The TextGraph and its seeded split (the LightGCN format brings its own split)."""
    if cfg.dataset != "ml-latest-small" and not cfg.path:
        raise ValueError(f"dataset {cfg.dataset!r} needs data.path (--set data.path=...)")
    path = resolve_source(cfg.path, cfg.sha256 or None) if cfg.path else None
    if cfg.dataset == "lightgcn":
        return load_lightgcn_split(path, cfg.valid_fraction, cfg.seed)
    if cfg.dataset == "ml-latest-small":
        graph = load_ml_latest_small(path)
    elif cfg.dataset == "ml-100k":
        graph = load_ml_100k(path)
    elif cfg.dataset == "ml-1m":
        graph = load_ml_1m(path)
    elif cfg.dataset == "synthetic":  # a folder written by `gnnrec synth`
        graph = load_synthetic(path)
    else:
        mapping = ColumnMapping(
            user=cfg.user_column,
            item=cfg.item_column,
            rating=cfg.rating_column or None,
            timestamp=cfg.timestamp_column or None,
            user_text=cfg.user_text_columns,
            item_text=cfg.item_text_columns,
        )
        graph = load_table(
            path,
            users=cfg.users_path or None,
            items=cfg.items_path or None,
            mapping=mapping,
            user_edges=cfg.user_edges_path or None,
            item_edges=cfg.item_edges_path or None,
        )
    split = split_interactions(
        graph,
        cfg.split,
        test_fraction=cfg.test_fraction,
        valid_fraction=cfg.valid_fraction,
        temporal_k=cfg.temporal_k,
        cold_item_fraction=cfg.cold_item_fraction,
        seed=cfg.seed,
    )
    return graph, split


def feature_cache(cfg: EncoderConfig) -> FeatureCache:
    """The cache for this encoder configuration (no model is loaded to find it)."""
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else DEFAULT_CACHE / "features"
    meta = {"backend": cfg.backend, "model": cfg.model}
    return FeatureCache(cache_dir, encoder_key(cfg), meta, getattr(torch, cfg.dtype))


def encode_texts(
    texts: list[str], cfg: EncoderConfig, progress: bool = True
) -> tuple[torch.Tensor, int]:
    """``[T, F]`` features of ``texts`` through the cache; the encoder is loaded only for texts
    the cache lacks, and with ``num_workers > 1`` those are encoded in shards on Ray Data."""

    def encode_missing(missing: list[str]) -> torch.Tensor:
        if cfg.num_workers > 1:
            from gnnrec.encoders.sharded import encode_sharded

            work = feature_cache(cfg).folder / "shards" / text_set_hash(missing)
            return torch.from_numpy(np.asarray(encode_sharded(missing, work, cfg, progress)))
        encoder = make_encoder(cfg)
        try:
            features = encoder.encode(missing, progress)
        finally:
            encoder.close()
        if encoder.truncated:
            print(
                f"{encoder.truncated} of {len(missing)} texts were longer than "
                f"{cfg.max_length} tokens and were truncated"
            )
        return features

    return feature_cache(cfg).get_or_encode(texts, encode_missing)


def node_texts(graph: TextGraph, split: Split, cfg: DataConfig) -> list[str]:
    """``U + I`` texts: users' from their training interactions (and profile), items' fields,
    each through its template if one is configured."""
    users = user_texts_from_interactions(graph, split.train, cfg.user_text_items, cfg.user_template)
    return users + node_table_texts(graph.items, cfg.item_template)


def encode_nodes(graph: TextGraph, split: Split, config: RunConfig, progress: bool = True) -> int:
    """Fills ``graph.user_features`` ``[U, F]`` and ``graph.item_features`` ``[I, F]`` (float16)
    unless the model uses no text; returns how many texts were encoded now (0 when the cache
    had them all)."""
    if not config.model.text_features:
        return 0
    texts = node_texts(graph, split, config.data)
    if not any(texts):
        raise ValueError(f"dataset {graph.name!r} has no text; set model.text_features = false")
    features, encoded = encode_texts(texts, config.encoder, progress)
    graph.user_features = features[: graph.num_users]
    graph.item_features = features[graph.num_users :]
    return encoded


def training_data(graph: TextGraph, split: Split) -> TrainingData:
    """The training graph (training interactions plus any user–user/item–item edges), the node
    features ``[U + I, F]`` float32 from the graph's slots, and the train/validation pairs."""
    inter = graph.interactions

    def pairs(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return inter.user[index], inter.item[index], inter.rating[index]

    store = GraphStore.bipartite(
        inter.user[split.train],
        inter.item[split.train],
        graph.num_users,
        graph.num_items,
        graph.user_edges,
        graph.item_edges,
    )
    features = None
    if graph.user_features is not None and graph.item_features is not None:
        features = torch.cat([graph.user_features, graph.item_features]).float()
    return TrainingData(store, features, pairs(split.train), pairs(split.valid))


def build_model(config: RunConfig, data: TrainingData) -> GCNRecommender:
    torch.manual_seed(config.train.seed)
    feature_dim = 0 if data.features is None else data.features.shape[1]
    return GCNRecommender(config.model, data.num_users, data.num_items, feature_dim)


@dataclass
class Prepared:
    graph: TextGraph
    split: Split
    data: TrainingData


def prepare(config: RunConfig, progress: bool = True) -> Prepared:
    graph, split = load_dataset(config.data)
    encode_nodes(graph, split, config, progress)
    return Prepared(graph, split, training_data(graph, split))


def test_pairs(prepared: Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inter, index = prepared.graph.interactions, prepared.split.test
    return inter.user[index], inter.item[index], inter.rating[index]
