"""``gnnrec tune``: the space file and its errors, and real Ray Tune searches on localhost over
the planted data: ASHA stops the bad trials early, the best config is written and trains as
is, and a search killed with ``kill -9`` resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import planted_sets

from gnnrec.config import load_config
from gnnrec.tune import read_space, trial_config

SPACE = """
[train.lr]
grid = [1e-6, 0.05]
[model.hidden]
choice = [8, 16]
"""


def _space(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_a_space_file_reads_as_dimensions(tmp_path):
    text = SPACE + "[train.l2]\nuniform = [0.0, 0.001]\n['train.l2_extra']\nloguniform = [1, 2]\n"
    dims = read_space(_space(tmp_path, text))
    assert {d.key: (d.kind, d.values) for d in dims} == {
        "train.lr": ("grid", (1e-6, 0.05)),
        "model.hidden": ("choice", (8, 16)),
        "train.l2": ("uniform", (0.0, 0.001)),
        "train.l2_extra": ("loguniform", (1, 2)),  # a quoted dotted key reads the same
    }


def test_grid_points_run_once_each_in_a_seeded_random_order(tmp_path):
    from gnnrec.tune import GRID, param_space, trial_values

    text = "[train.lr]\ngrid = [1, 2, 3, 4]\n[train.l2]\ngrid = [5, 6, 7]\n"
    dims = read_space(_space(tmp_path, text + "[model.hidden]\nchoice = [8, 16]\n"))
    orders = {}
    for seed in (0, 0, 1):
        space = param_space(dims, seed)
        points = space[GRID]["grid_search"]
        assert sorted((p["train.lr"], p["train.l2"]) for p in points) == [
            (lr, l2) for lr in (1, 2, 3, 4) for l2 in (5, 6, 7)
        ]
        orders.setdefault(seed, []).append([tuple(p.values()) for p in points])
        assert set(space) == {GRID, "model.hidden"}
    assert orders[0][0] == orders[0][1] != orders[1][0]  # seeded, and not the written order
    assert orders[0][0] != [(lr, l2) for lr in (1, 2, 3, 4) for l2 in (5, 6, 7)]
    trial = {"model.hidden": 8, GRID: {"train.lr": 2, "train.l2": 7}}
    assert trial_values(trial) == {"model.hidden": 8, "train.lr": 2, "train.l2": 7}


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train.lr]\nnormal = [0, 1]\n", "needs one distribution of grid, choice"),
        ("[train.lr]\nuniform = [1, 0]\n", "must be \\[low, high\\] numbers, low < high"),
        ("[train.lr]\nloguniform = [0, 1]\n", "needs low > 0"),
        ("[train.lr]\nchoice = []\n", "must be a non-empty list"),
        ("", "the space has no keys"),
        ("[train.lr\n", "not a readable TOML space"),
    ],
)
def test_bad_space_files_are_refused(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_space(_space(tmp_path, text))


def test_a_trial_value_the_config_does_not_take_names_its_key(tmp_path):
    import dataclasses

    base = dataclasses.asdict(load_config(None, []))
    with pytest.raises(ValueError, match="train: unknown key.s. .lrr.; did you mean .lr."):
        trial_config(base, {"train.lrr": 0.1}, tmp_path)
    with pytest.raises(ValueError, match="model.hidden must be an integer"):
        trial_config(base, {"model.hidden": 0.5}, tmp_path)
    assert trial_config(base, {"train.lr": 0.1}, tmp_path).train.lr == 0.1


def _tune_argv(planted_dir, cache, tune_dir, samples: int = 2) -> list[str]:
    extra = ("model.name=lightgcn", "model.text_features=false", "train.epochs=6")
    return [
        "tune",
        *planted_sets(planted_dir, cache, *extra),
        "--space",
        str(_space(tune_dir.parent)),
        "--num-samples",
        str(samples),
        "--max-concurrent",
        "2",
        "--run-dir",
        str(tune_dir),
    ]


@pytest.mark.slow  # a Ray Tune search on localhost
def test_tune_stops_bad_trials_early_and_writes_a_best_config_that_trains(
    planted_dir, feature_cache, tmp_path, capsys
):
    from gnnrec.cli import main

    tune_dir = tmp_path / "tune"
    assert main(_tune_argv(planted_dir, feature_cache, tune_dir)) == 0
    rows = [json.loads(line) for line in (tune_dir / "trials.jsonl").open()]
    assert len(rows) == 4  # 2 grid points x 2 samples
    assert min(r["epochs_run"] for r in rows) < 6 <= max(r["epochs_run"] for r in rows)  # ASHA
    best = max(rows, key=lambda r: r["score"])
    assert best["values"]["train.lr"] == 0.05
    config = load_config(tune_dir / "best.toml", [])
    assert config.train.lr == 0.05 and config.run_dir == str(tune_dir / "best")
    assert config.model.hidden == best["values"]["model.hidden"]
    assert "best trial: recall@20" in capsys.readouterr().out
    assert main(["train", "--config", str(tune_dir / "best.toml")]) == 0  # as is
    assert (tune_dir / "best" / "model.pt").is_file()


@pytest.mark.slow  # a Ray Tune search on localhost, killed and resumed
def test_a_killed_search_resumes(planted_dir, feature_cache, tmp_path):
    tune_dir = tmp_path / "tune"
    argv = [sys.executable, "-m", "gnnrec", *_tune_argv(planted_dir, feature_cache, tune_dir)]
    process = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(tune_dir.glob("trials/*/checkpoints/last.pt")):
        time.sleep(0.5)
    assert process.poll() is None, "the search ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tune_dir / "trials.jsonl").exists()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tune_dir / "trials.jsonl").open()]
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    for trial in (tune_dir / "trials").iterdir():  # resumed trials go on from their epochs
        epochs = [json.loads(line)["epoch"] for line in (trial / "metrics.jsonl").open()]
        assert epochs == list(range(1, len(epochs) + 1))


def test_a_trial_resumed_after_its_last_epoch_reports_its_history(tmp_path, monkeypatch):
    """A trial killed after its run's last epoch runs no epoch when resumed: it reports the
    run's last validated epoch again, so Tune gets a result with the metric."""
    from ray import tune

    from gnnrec.tune import SCORE, TuneReport

    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4, "valid_recall@20": 0.3}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    reported = []
    monkeypatch.setattr(tune, "report", reported.append)
    TuneReport("recall@20").report_history(tmp_path)
    assert reported == [{"epoch": 2, "recall@20": 0.3, SCORE: 0.3}]
    done = TuneReport("recall@20")
    done.on_epoch_end(rows[1])
    done.report_history(tmp_path)  # reported this time: nothing again
    assert len(reported) == 2
