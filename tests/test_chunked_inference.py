"""Chunked inference (eval.chunk_nodes): the final embeddings computed a chunk of nodes at a
time equal the whole-graph ones, for every model shape; and a run evaluated in chunks reports
the same metrics."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from helpers import planted_config

from gnnrec.data import CSR, GraphStore
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.run import train_run
from gnnrec.train.evaluate import node_embeddings
from gnnrec.train.training_data import TrainingData

SHAPES = {
    "gcn text+ids": dict(name="gcn", text_features=True, id_embeddings=True),
    "gcn mean, weights, last": dict(
        name="gcn", aggregation="mean", conv_weights=True, layer_combination="last"
    ),
    "gcn max": dict(name="gcn", aggregation="max", text_features=False),
    "lightgcn": dict(name="lightgcn", text_features=False, id_dropout=0.0),
    "mf": dict(name="mf", text_features=False, id_dropout=0.0, layers=0),
    # the running sum of the layers takes over h^0's buffer: one, two and three layers
    "lightgcn 1 layer": dict(name="lightgcn", text_features=False, id_dropout=0.0, layers=1),
    "gcn 3 layers": dict(name="gcn", layers=3),
    "gcn 3 layers, last": dict(name="gcn", layers=3, layer_combination="last"),
    "gat text+ids, weights": dict(name="gat", conv_weights=True, heads=2),
    "gat ids, 4 heads": dict(name="gat", text_features=False, heads=4, id_dropout=0.0),
    "ncf text+ids": dict(name="ncf"),
}


def small_data(users: int = 30, items: int = 25, seed: int = 0) -> TrainingData:
    g = torch.Generator().manual_seed(seed)
    u = torch.randint(0, users, (200,), generator=g).numpy()
    i = torch.randint(0, items - 3, (200,), generator=g).numpy()  # the last 3 items: no edges
    store = GraphStore.bipartite(u, i, users, items)
    features = torch.randn(users + items, 6, generator=g)
    empty = (u[:0], i[:0], u[:0].astype("float32"))
    return TrainingData(store, features, (u, i, u.astype("float32")), empty)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("chunk", [1, 7, 54])
def test_chunks_equal_the_whole_graph(shape, chunk):
    data = small_data()
    options = {"layers": 2, **SHAPES[shape]}
    config = ModelConfig(hidden=8, **options)
    model = build_model(config, data.num_users, data.num_items, data.feature_dim, seed=3)
    whole = node_embeddings(model, data)
    chunked = node_embeddings(model, data, chunk_nodes=chunk)
    assert chunked.device.type == "cpu" and chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole.cpu(), rtol=1e-5, atol=1e-6)


def test_a_run_evaluated_in_chunks_reports_the_same_metrics(planted_dir, feature_cache, tmp_path):
    whole = train_run(planted_config(planted_dir, feature_cache, tmp_path / "a", "train.epochs=2"))
    chunked = train_run(
        planted_config(
            planted_dir,
            feature_cache,
            tmp_path / "b",
            "train.epochs=2",
            "eval.chunk_nodes=13",
            "train.valid_chunk_nodes=13",
        )
    )
    for key in ("recall@20", "ndcg@20", "recall@10"):
        assert chunked[key] == pytest.approx(whole[key], abs=1e-6)
    epochs = [
        [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("a", "b")
    ]
    valid = [[row["valid_recall@20"] for row in rows] for rows in epochs]
    assert len(valid[0]) == 2 and valid[1] == pytest.approx(valid[0], abs=1e-6)
    # The same items in the same ranks; the scores (written to 6 decimals) agree to fp32
    # rounding: chunks sum in another order, which shows in the 6th decimal on some CPUs.
    tables = [
        list(csv.DictReader((tmp_path / run / "recommendations.csv").open()))[:5]
        for run in ("a", "b")
    ]
    key = ("user_id", "rank", "item_id")
    assert [[r[k] for k in key] for r in tables[1]] == [[r[k] for k in key] for r in tables[0]]
    scores = [[float(r["score"]) for r in table] for table in tables]
    assert scores[1] == pytest.approx(scores[0], rel=1e-5, abs=2e-6)


def test_row_block_reads_only_the_columns_of_its_rows():
    from gnnrec.kernels.csr import row_block

    csr = CSR.from_edges(torch.tensor([0, 0, 1, 2, 2]), torch.tensor([4, 1, 4, 0, 3]), 3, 5)
    indptr, indices, sources = row_block(csr.indptr, csr.indices, 1, 3)
    assert indptr.tolist() == [0, 1, 3] and sources.tolist() == [0, 3, 4]
    assert sources[indices.long()].tolist() == [4, 0, 3]  # rows 1 and 2, global columns


def test_a_sampled_evaluation_ranks_the_users_drawn_and_says_so(
    planted_dir, feature_cache, tmp_path
):
    from helpers import planted_config

    from gnnrec.run import train_run

    config = planted_config(planted_dir, feature_cache, tmp_path / "run", "train.epochs=1")
    config.eval.test_users = 20
    metrics = train_run(config)
    assert metrics["n_users_evaluated"] == 20
    assert metrics["test_user_sample"] == {"users": 20, "of": 48, "seed": 0}
    again = train_run(config)  # a finished run, evaluated again: the same sample
    assert again["recall@20"] == metrics["recall@20"]
    config.eval.test_users = 0
    everyone = train_run(config)
    assert everyone["n_users_evaluated"] == 48 and "test_user_sample" not in everyone
