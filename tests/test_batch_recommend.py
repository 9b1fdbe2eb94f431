"""Recommendations for every user on Ray Data workers equal the one-process table, row for row
(a dot-product model and NCF), as Parquet parts in a folder that replaces only an earlier one."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import error_line, parse_refusal, planted_config

from gnnrec.cli import main
from gnnrec.run import train_run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model", ["lightgcn", "ncf"])
def test_ray_data_recommendations_equal_the_one_process_table(
    model, planted_dir, feature_cache, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    overrides = [f"model.name={model}", "model.text_features=false", "train.epochs=2"]
    if model == "ncf":
        overrides.append("model.layers=0")
    train_run(planted_config(planted_dir, feature_cache, run_dir, *overrides))
    out = tmp_path / "top"
    args = ["recommend", "--run-dir", str(run_dir), "-k", "10", "--num-workers", "2"]
    assert main([*args, "--output", str(out)]) == 0
    assert "for 48 users" in capsys.readouterr().out
    table = pq.read_table(out).to_pylist()  # every part
    with open(run_dir / "recommendations.csv") as f:
        expected = list(csv.DictReader(f))
    key = lambda r: (r["user_id"], int(r["rank"]))  # noqa: E731
    got = sorted(table, key=key)
    assert len(got) == len(expected) == 48 * 10
    for mine, theirs in zip(got, sorted(expected, key=key)):
        assert (mine["user_id"], mine["rank"]) == (theirs["user_id"], int(theirs["rank"]))
        assert (
            mine["item_id"] == theirs["item_id"]
            or abs(mine["score"] - float(theirs["score"])) < 1e-5
        )
        assert abs(mine["score"] - float(theirs["score"])) < 1e-5
    assert main([*args, "--output", str(out)]) == 0  # an earlier result is replaced
    assert len(pq.read_table(out)) == len(expected)


def test_an_export_on_ray_data_holds_what_the_one_process_export_holds(
    planted_dir, feature_cache, tmp_path
):
    run_dir = tmp_path / "run"
    overrides = ["model.name=lightgcn", "model.text_features=false", "train.epochs=2"]
    train_run(planted_config(planted_dir, feature_cache, run_dir, *overrides))
    one, ray = tmp_path / "one", tmp_path / "ray"
    assert main(["export", "--run-dir", str(run_dir), "--output", str(one)]) == 0
    args = ["export", "--run-dir", str(run_dir), "--output", str(ray), "--num-workers", "2"]
    assert main(args) == 0
    parts = sorted((ray / "users").glob("part-*.parquet"))
    assert len(parts) == 2  # a block a worker
    users = pq.read_table(ray / "users").to_pydict()  # the parts in row order
    assert users["user_id"] == pq.read_table(one / "user_ids.parquet")["id"].to_pylist()
    np.testing.assert_array_equal(
        np.array(users["embedding"], dtype=np.float32), np.load(one / "user_embeddings.npy")
    )
    indptr, seen = np.load(one / "seen_indptr.npy"), np.load(one / "seen_items.npy")
    assert users["seen"] == [seen[a:b].tolist() for a, b in zip(indptr[:-1], indptr[1:])]
    for name in ("item_embeddings.npy", "item_ids.parquet"):
        assert (one / name).read_bytes() == (ray / name).read_bytes()
    meta = json.loads((ray / "export.json").read_text())
    assert meta["users"].startswith("users/part-") and meta["num_users"] == 48
    assert not (ray / "user_embeddings.npy").exists()


def test_what_cannot_be_written_is_refused_before_ray_starts(
    planted_dir, feature_cache, tmp_path, capsys
):
    run_dir = tmp_path / "run"
    overrides = ["model.name=mf", "model.text_features=false", "model.layers=0", "train.epochs=1"]
    train_run(planted_config(planted_dir, feature_cache, run_dir, *overrides))
    args = ["recommend", "--run-dir", str(run_dir), "--num-workers", "2"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert str(foreign) in error_line(capsys, main([*args, "--output", str(foreign)]))
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert "give --output" in error_line(capsys, main(args))
    zero = [*args[:-1], "0", "--output", str(tmp_path / "x")]
    assert "argument --num-workers: 0 is below 1" in parse_refusal(capsys, zero)
    line = error_line(capsys, main([*args, "--output", str(tmp_path / "top.csv")]))
    assert "a folder of Parquet parts, not one .csv file" in line  # the format its name says
    assert "is new" in error_line(capsys, main([*args, "--items", "i0_1"]))
    export = ["export", "--run-dir", str(run_dir), "--num-workers", "-1"]
    assert "argument --num-workers: -1 is below 0" in parse_refusal(capsys, export)
    assert not (tmp_path / "x").exists() and not (tmp_path / "top.csv").exists()
