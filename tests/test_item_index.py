"""The item index: ``flat`` is exact, ``hnsw`` and ``ivf`` find the exact top 20 by inner
product (items of unequal norms) at recall >= 0.99 on MovieLens; ``gnnrec export --index``
writes it with each user's seen items, and it loads back to the same answers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import planted_config

import gnnrec
from gnnrec.cli import main
from gnnrec.serve.item_index import IndexConfig, ItemIndex

K = 20


def _exact(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return torch.topk(torch.from_numpy(queries @ items.T), k, dim=1).indices.numpy()


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def test_flat_is_exact_and_the_approximate_ones_find_the_top_k():
    rng = np.random.default_rng(0)
    # embeddings as a trained model has them: in clusters (tastes), of unequal norms
    centers = rng.normal(size=(30, 16)) * 2
    items = centers[rng.integers(0, 30, 3000)] + rng.normal(size=(3000, 16))
    items = (items * rng.uniform(0.5, 2, (3000, 1))).astype(np.float32)
    queries = (centers[rng.integers(0, 30, 200)] + rng.normal(size=(200, 16))).astype(np.float32)
    exact = _exact(items, queries, K)
    rows, scores = ItemIndex(items, IndexConfig(kind="flat")).search(queries, K)
    assert _recall(rows, exact) == 1.0
    np.testing.assert_allclose(
        scores, np.sort(queries @ items.T, axis=1)[:, ::-1][:, :K], rtol=1e-5
    )
    assert (np.diff(scores, axis=1) <= 0).all()  # best first
    for kind in ("hnsw", "ivf"):
        rows, _ = ItemIndex(items, IndexConfig(kind=kind)).search(queries, K)
        assert _recall(rows, exact) >= 0.95, kind
    with pytest.raises(ValueError, match="ef_search must be at least 1"):
        IndexConfig(ef_search=0)
    with pytest.raises(ValueError, match="kind"):
        IndexConfig(kind="annoy")


@pytest.mark.slow
def test_ann_top_k_matches_exact_on_movielens(tmp_path):
    config = gnnrec.load_config(
        overrides=[
            f'run_dir="{tmp_path / "ml"}"',
            "model.name=lightgcn",
            "model.text_features=false",
            "train.epochs=3",
            "train.progress=false",
        ]
    )
    gnnrec.fit(config)
    exact = gnnrec.load(config.run_dir)
    users = list(exact.user_ids)
    expected = exact.recommend(users, k=K)
    for kind in ("hnsw", "ivf"):
        approximate = gnnrec.load(config.run_dir, index=IndexConfig(kind=kind)).recommend(
            users, k=K
        )
        recall = np.mean(
            [len({i for i, _ in approximate[u]} & {i for i, _ in expected[u]}) / K for u in users]
        )
        assert recall >= 0.99, (kind, recall)
        for user in users[:50]:  # no seen item, whatever the index returns
            assert not {i for i, _ in approximate[user]} & set(exact.seen_items(user))


def test_export_writes_the_index_and_seen_items(planted_dir, feature_cache, tmp_path, capsys):
    run_dir = tmp_path / "run"
    overrides = ["model.name=lightgcn", "model.text_features=false", "train.epochs=2"]
    gnnrec.fit(planted_config(planted_dir, feature_cache, run_dir, *overrides))
    assert main(["export", "--run-dir", str(run_dir), "--index", "hnsw"]) == 0
    assert "and the item index (hnsw)" in capsys.readouterr().out
    folder = run_dir / "export"
    meta = json.loads((folder / "export.json").read_text())
    assert meta["index"]["kind"] == "hnsw" and meta["index"]["file"] == "items.faiss"
    items = np.load(folder / "item_embeddings.npy")
    users = np.load(folder / "user_embeddings.npy")
    loaded = ItemIndex.load(folder, items)
    built = ItemIndex(items, IndexConfig(kind="hnsw"))
    for a, b in zip(loaded.search(users, 5), built.search(users, 5)):
        np.testing.assert_array_equal(a, b)
    # the seen items are the training pairs: masking them gives the run's own recommendations
    indptr, seen = np.load(folder / "seen_indptr.npy"), np.load(folder / "seen_items.npy")
    handle = gnnrec.load(run_dir)
    item_ids = list(handle.item_ids)
    for row, user in enumerate(handle.user_ids):
        assert sorted(item_ids[i] for i in seen[indptr[row] : indptr[row + 1]]) == sorted(
            handle.seen_items(user)
        )
    scores = users @ items.T
    for row in range(len(users)):
        scores[row, seen[indptr[row] : indptr[row + 1]]] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    table = handle.recommend(list(handle.user_ids), k=5)
    for row, user in enumerate(handle.user_ids):
        assert [item_ids[i] for i in top[row]] == [i for i, _ in table[user]] or np.allclose(
            np.sort(scores[row])[::-1][:5], [s for _, s in table[user]], atol=1e-5
        )
    with pytest.raises(ValueError, match="kind"):
        gnnrec.export(run_dir, index="annoy")
