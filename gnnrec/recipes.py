"""Named recipes: functions that return a complete :class:`RunConfig`."""

from __future__ import annotations

from gnnrec.config import RunConfig
from gnnrec.data import DataConfig
from gnnrec.models.config import ModelConfig
from gnnrec.train.config import TrainConfig


def ml_latest_small_cpu() -> RunConfig:
    """The demo: text-feature GCN on the bundled ml-latest-small, random 80/20 split, 2 cores;
    10% of its training items scored as cold items are (``model.cold_dropout``), which makes
    it as good as the best model on cold items while it stays the best on warm ones
    (``bench/README.md``, Quality)."""
    return RunConfig(
        run_dir="runs/demo",
        data=DataConfig(dataset="ml-latest-small"),
        model=ModelConfig(hidden=64, layers=3, cold_dropout=0.1),
        train=TrainConfig(epochs=30, batch_size=2048, lr=5e-3, patience=5),
    )


def lightgcn_paper() -> RunConfig:
    """LightGCN as published (He et al., SIGIR 2020) on a LightGCN-format folder
    (``--set data.path=DIR`` with ``train.txt``/``test.txt``): 3 layers, 64-d, layer mean,
    ``D^-1/2 A D^-1/2`` without self-loops, BPR with one uniform negative, L2 1e-4 on the
    batch's layer-0 embeddings, Adam lr 1e-3, batch 2048, its sampler (each epoch draws as many
    (uniform user, uniform positive) pairs as there are training pairs), evaluated on the test
    file. Published
    Recall@20 / NDCG@20: Gowalla 0.1830 / 0.1554, Yelp2018 0.0649 / 0.0530, Amazon-Book
    0.0411 / 0.0315."""
    return RunConfig(
        run_dir="runs/lightgcn",
        data=DataConfig(dataset="lightgcn", valid_fraction=0.0),
        model=ModelConfig(
            name="lightgcn", hidden=64, layers=3, text_features=False, id_dropout=0.0
        ),
        train=TrainConfig(
            epochs=1000,
            batch_size=2048,
            sampling="users",
            lr=1e-3,
            l2=1e-4,
            num_negatives=1,
            eval_every=20,
        ),
    )


def lightgcn_ml_latest_small() -> RunConfig:
    """LightGCN (ID embeddings only) on the bundled data with the demo's budget and optimiser,
    so that it compares with the text-feature GCN on equal terms."""
    config = ml_latest_small_cpu()
    config.run_dir = "runs/lightgcn-ml-latest-small"
    config.model = ModelConfig(
        name="lightgcn", hidden=64, layers=3, text_features=False, id_dropout=0.0
    )
    return config


def mf_ml_latest_small() -> RunConfig:
    """Matrix factorisation with BPR (ID embeddings, no propagation) on the bundled data."""
    config = ml_latest_small_cpu()
    config.run_dir = "runs/mf-ml-latest-small"
    config.model = ModelConfig(name="mf", hidden=64, layers=0, text_features=False, id_dropout=0.0)
    return config


RECIPES = {
    "ml_latest_small_cpu": ml_latest_small_cpu,
    "lightgcn_ml_latest_small": lightgcn_ml_latest_small,
    "mf_ml_latest_small": mf_ml_latest_small,
    "lightgcn_paper": lightgcn_paper,
}
