"""What is asked for is what is done: an empty or odd ``--run-dir`` is an error (never the
default folder), a run never trains into a folder of other files, and recommendations never
hold an item the user already has, whatever ``k``."""

from __future__ import annotations

import csv

import pytest
import torch
from helpers import error_line, planted_sets

import gnnrec
from gnnrec.cli import main
from gnnrec.common.run_lock import remove_run_dir
from gnnrec.run import load_run


@pytest.mark.parametrize("run_dir", ["", "   ", " runs/a", "runs/a\n", "runs/\x01a"])
def test_an_empty_or_odd_run_dir_is_an_error(run_dir, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["train"], ["config", "show"]):
        line = error_line(capsys, main([*command, "--run-dir", run_dir]))
        assert "run_dir" in line
    assert not list(tmp_path.iterdir())  # no runs/demo fallback


def test_a_run_never_trains_into_a_folder_of_other_files(
    planted_dir, feature_cache, tmp_path, capsys, monkeypatch
):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.pt").write_text("my own model, not gnnrec's")
    args = planted_sets(planted_dir, feature_cache, "train.epochs=1")
    line = error_line(capsys, main(["train", "--run-dir", str(mine), *args]))
    assert "no gnnrec run" in line
    assert (mine / "model.pt").read_text() == "my own model, not gnnrec's"
    monkeypatch.chdir(mine)
    line = error_line(capsys, main(["train", "--run-dir", ".", *args]))
    assert "current folder" in line
    assert sorted(p.name for p in mine.iterdir()) == ["model.pt"]


def test_benchmarks_remove_only_earlier_runs(tmp_path):
    foreign = tmp_path / "run"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ValueError, match="no gnnrec run directory"):
        remove_run_dir(foreign)
    assert (foreign / "notes.txt").exists()


def test_recommendations_never_hold_a_seen_item_whatever_k(planted_dir, feature_cache, tmp_path):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--run-dir",
                str(run),
                *planted_sets(planted_dir, feature_cache, "train.epochs=1"),
            ]
        )
        == 0
    )
    config, prepared, _ = load_run(run)
    graph, data = prepared.graph, prepared.data
    seen = {
        (graph.users.ids[u], graph.items.ids[i])
        for u, i in zip(*(a.tolist() for a in data.train[:2]))
    }
    k = graph.num_items + 5  # more than any user has left
    out = tmp_path / "all.csv"
    assert main(["recommend", "--run-dir", str(run), "-k", str(k), "--output", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert rows and not any((r["user_id"], r["item_id"]) in seen for r in rows)
    per_user = {}
    for r in rows:
        per_user.setdefault(r["user_id"], []).append(int(r["rank"]))
    user = graph.users.ids[0]
    count = sum(1 for u, _ in seen if u == user)
    assert per_user[user] == list(range(1, graph.num_items - count + 1))  # every unseen item
    top = gnnrec.recommend(run, k=k, users=[user])[user]
    assert len(top) == graph.num_items - count
    assert not any((user, item) in seen for item, _ in top)


@pytest.mark.parametrize(
    "override, message",
    [
        ('data.path="/nonexistent/ratings.csv"', "no such file or folder"),
        ('train.device="cuda:7"', "cuda"),
    ],
)
def test_config_show_refuses_what_train_refuses(override, message, capsys, tmp_path):
    if "cuda" in override and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    run = ["--run-dir", str(tmp_path / "run")]
    shown = error_line(capsys, main(["config", "show", *run, "--set", override]))
    trained = error_line(capsys, main(["train", *run, "--set", override]))
    assert message in shown and shown.split("error: ")[1] == trained.split("error: ")[1]


def test_recommend_refuses_an_output_it_would_ignore(tmp_path, capsys):
    line = error_line(
        capsys,
        main(["recommend", "--run-dir", str(tmp_path), "--text", "x", "--output", "a.csv"]),
    )
    assert "--output" in line and "--text" in line
