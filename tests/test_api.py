"""``import gnnrec``: every advertised name resolves, nothing heavy loads up front, and the
recommend API ranks like the run's own recommendations file."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import planted_config

import gnnrec
from gnnrec.outputs import write_recommendations
from gnnrec.run import load_run, train_run
from gnnrec.serve.launch import serve_run


def test_every_exported_name_resolves():
    for name in gnnrec.__all__:
        assert getattr(gnnrec, name) is not None, name
    with pytest.raises(AttributeError):
        gnnrec.no_such_thing  # noqa: B018


def test_import_is_light():
    code = "import sys, gnnrec; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_recommend_and_export_match_the_run(planted_dir, feature_cache, tmp_path):
    run_dir = tmp_path / "run"
    train_run(planted_config(planted_dir, feature_cache, run_dir, "train.epochs=2"))
    with open(run_dir / "recommendations.csv") as f:
        written = [row for row in csv.DictReader(f) if row["user_id"] in ("u3", "u7")]
    top = gnnrec.recommend(run_dir, k=10, users=["u7", "u3"])
    for user in ("u3", "u7"):
        expected = [r["item_id"] for r in written if r["user_id"] == user]
        assert [item for item, _ in top[user]] == expected
    sample = tmp_path / "sample.csv"
    config, prepared, model = load_run(run_dir, ["eval.recommend_users=5"])
    write_recommendations(prepared, model, config, sample)
    with open(sample) as f:
        sampled = list(csv.DictReader(f))
    chosen = {row["user_id"] for row in sampled}
    assert len(chosen) == 5 and len(sampled) == 5 * 10  # top 10 each
    with open(run_dir / "recommendations.csv") as f:  # the same rows as for every user
        everyone = [row for row in csv.DictReader(f) if row["user_id"] in chosen]
    key = ("user_id", "rank", "item_id")
    assert [[r[k] for k in key] for r in sampled] == [[r[k] for k in key] for r in everyone]
    with pytest.raises(ValueError, match="unknown user"):
        gnnrec.recommend(run_dir, users=["nobody"])
    with pytest.raises(ValueError, match="k must be at least 1"):
        gnnrec.recommend(run_dir, k=0)
    with pytest.raises(ValueError, match="text is empty"):
        gnnrec.recommend_for_text(run_dir, "  ")
    folder = gnnrec.export(run_dir)

    users = np.load(folder / "user_embeddings.npy")
    items = np.load(folder / "item_embeddings.npy")
    user_ids = pq.read_table(folder / "user_ids.parquet")["id"].to_pylist()
    item_ids = pq.read_table(folder / "item_ids.parquet")["id"].to_pylist()
    assert users.shape[0] == len(user_ids) and items.shape[0] == len(item_ids)
    row = users[user_ids.index("u3")]
    for item, score in top["u3"]:  # the exported rows give the scores the run ranked by
        assert float(row @ items[item_ids.index(item)]) == pytest.approx(score, rel=1e-5)


def test_export_refuses_a_model_whose_score_is_not_a_dot_product(
    planted_dir, feature_cache, tmp_path
):
    run_dir = tmp_path / "run"
    extra = ("model.name=ncf", "model.text_features=false", "train.epochs=1")
    train_run(planted_config(planted_dir, feature_cache, run_dir, *extra))
    with pytest.raises(ValueError, match="more than a dot product.*gnnrec recommend"):
        gnnrec.export(run_dir)
    assert not (run_dir / "export").exists()  # nothing half-written
    with pytest.raises(ValueError, match="more than a dot product.*without one"):
        gnnrec.load(run_dir, index="flat")
    with pytest.raises(ValueError, match="NCF on IDs scores pairs with more than a dot product"):
        serve_run(run_dir, index="hnsw")  # before Ray starts, not in every replica
