"""gnnrec: graph recommendation with LLM node features.

Run level (what the CLI does)::

    import gnnrec
    config = gnnrec.load_config(overrides=["train.epochs=5", 'run_dir="runs/a"'])
    metrics = gnnrec.fit(config)
    top = gnnrec.recommend("runs/a", k=10)
    run = gnnrec.load("runs/a")            # held in memory: recommend, fold in, similar items

Building blocks: :func:`aggregate` (the sparse aggregation), :class:`NeighborSampler`,
:class:`GraphStore`/:class:`CSR`, :class:`FeatureStore`, :class:`GCNLayer`,
:class:`GCNRecommender` and the :class:`Recommender` interface, :class:`Trainer`; PyG's
extension points: :class:`PyGNeighborSampler` / :class:`PyGHeteroNeighborSampler` (a
``BaseSampler``), :class:`PyGGraphStore` / :class:`PyGHeteroGraphStore` /
:class:`PyGFeatureStore`, :class:`KernelGCNConv` / :class:`KernelLGConv`. Names load on first
use, so ``import gnnrec`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # run level
    "load_config": "gnnrec.api",
    "fit": "gnnrec.api",
    "evaluate": "gnnrec.api",
    "recommend": "gnnrec.api",
    "recommend_for_text": "gnnrec.api",
    "export": "gnnrec.api",
    "load": "gnnrec.api",
    "RunHandle": "gnnrec.serve.handle",
    "RunConfig": "gnnrec.config",
    "RECIPES": "gnnrec.recipes",
    # configuration of the components
    "DataConfig": "gnnrec.data.config",
    "EncoderConfig": "gnnrec.encoders.config",
    "ModelConfig": "gnnrec.models.config",
    "TrainConfig": "gnnrec.train.config",
    "EvalConfig": "gnnrec.train.evaluate",
    "ParallelLayout": "gnnrec.distributed.layout",
    "TrackConfig": "gnnrec.train.trackers",
    "Callback": "gnnrec.train.callbacks",
    # building blocks
    "aggregate": "gnnrec.kernels",
    "CSR": "gnnrec.data.graph_store",
    "GraphStore": "gnnrec.data.graph_store",
    "TextGraph": "gnnrec.data.textgraph",
    "register_dataset": "gnnrec.data.datasets",
    "load_dataset": "gnnrec.data.datasets",
    "NeighborSampler": "gnnrec.train.sampler",
    "FeatureStore": "gnnrec.train.feature_store",
    "GraphView": "gnnrec.models.graph_view",
    "GCNLayer": "gnnrec.models.gcn_layer",
    "GCNRecommender": "gnnrec.models.gcn",
    "register_model": "gnnrec.models.config",
    "Recommender": "gnnrec.models.recommender",
    "build_model": "gnnrec.models.config",
    "Trainer": "gnnrec.train.trainer",
    "TrainingData": "gnnrec.train.training_data",
    "full_ranking_metrics": "gnnrec.train.metrics",
    "make_encoder": "gnnrec.encoders.factory",
    # PyG extension points
    "PyGNeighborSampler": "gnnrec.train.pyg_sampler",
    "PyGHeteroNeighborSampler": "gnnrec.train.pyg_sampler",
    "PyGGraphStore": "gnnrec.data.pyg_stores",
    "PyGHeteroGraphStore": "gnnrec.data.pyg_stores",
    "PyGFeatureStore": "gnnrec.data.pyg_stores",
    "as_csr": "gnnrec.data.pyg_stores",
    "KernelGCNConv": "gnnrec.models.pyg_conv",
    "KernelLGConv": "gnnrec.models.pyg_conv",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gnnrec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
