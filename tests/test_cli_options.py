"""The CLI's options: every command's ``--help`` shows each option's default, ``recommend``
takes ``--users`` and ``--set``, ``evaluate`` takes ``--set``, and the bench topics come from
one list."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import error_line, planted_sets

from gnnrec.bench import TOPICS
from gnnrec.cli import build_parser, main


@pytest.fixture(scope="module")
def run(tmp_path_factory, planted_dir, feature_cache):
    run_dir = tmp_path_factory.mktemp("cli-options") / "run"
    args = ["train", "--run-dir", str(run_dir)]
    args += planted_sets(planted_dir, feature_cache, "train.epochs=1")
    assert main(args) == 0
    return run_dir


def help_of(*command: str) -> str:
    parser = build_parser()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 (argparse keeps them here)
        node = action.choices[command[0]]
    for name in command[1:]:
        node = node._subparsers._group_actions[0].choices[name]  # noqa: SLF001
    return " ".join(node.format_help().split())


def test_help_shows_defaults():
    assert "items per user (default: 10)" in help_of("recommend")
    assert "--users ID [ID ...] only these user ids (default: every user)" in help_of("recommend")
    assert (
        "--interactions-per-user INTERACTIONS_PER_USER mean interactions a user (default: 20.0)"
        in help_of("synth")
    )
    assert "--recipe" in help_of("config", "show") and "(default: ml_latest_small_cpu)" in help_of(
        "train"
    )


def test_bench_topics_are_one_list():
    assert f"benchmarks: {', '.join(TOPICS)}" in " ".join(build_parser().format_help().split())
    for topic in TOPICS:
        __import__(f"gnnrec.bench.{topic}")  # each names a module with a main


def test_recommend_for_chosen_users(run, tmp_path, capsys):
    out = tmp_path / "top.csv"
    assert (
        main(
            [
                "recommend",
                "--run-dir",
                str(run),
                "--users",
                "u3",
                "u1",
                "u3",
                "-k",
                "2",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert [r["user_id"] for r in rows] == ["u3", "u3", "u1", "u1"]
    capsys.readouterr()
    line = error_line(
        capsys,
        main(
            [
                "recommend",
                "--run-dir",
                str(run),
                "--users",
                "nobody",
                "--output",
                str(tmp_path / "x.csv"),
            ]
        ),
    )
    assert "unknown user id(s) ['nobody']" in line and not (tmp_path / "x.csv").exists()


def test_evaluate_and_recommend_take_overrides(run):
    assert main(["evaluate", "--run-dir", str(run), "--set", "eval.test_users=5"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n_users_evaluated"] == 5
    assert main(["recommend", "--run-dir", str(run), "--set", "eval.recommend_users=3"]) == 0
    rows = list(csv.DictReader((run / "recommendations.csv").open()))
    assert len({r["user_id"] for r in rows}) == 3
