"""Training end to end on a small planted dataset: learning, modes, objectives, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import planted_config

from gnnrec.config import load_config, save_config
from gnnrec.run import train_run


def test_gcn_learns_the_planted_structure(planted_dir, feature_cache, tmp_path):
    metrics = train_run(planted_config(planted_dir, feature_cache, tmp_path / "run"))
    assert metrics["recall@20"] > 1.5 * metrics["baselines"]["popularity"]["recall@20"]
    assert metrics["n_users_evaluated"] == 48
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert len(history) == 8 and history[-1]["loss"] < history[0]["loss"]
    for name in (
        "config.toml",
        "metrics.json",
        "model.pt",
        "training_curve.png",
        "recommendations.csv",
        "checkpoints/last.pt",
        "stages.json",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    stages = json.loads((tmp_path / "run" / "stages.json").read_text())
    assert [s["stage"] for s in stages] == [
        "prepare",
        "train",
        "embeddings",
        "evaluate",
        "recommend",
    ]
    assert all(s["seconds"] >= 0 for s in stages)
    assert all(a["start"] + a["seconds"] <= b["start"] for a, b in zip(stages, stages[1:]))


@pytest.mark.parametrize(
    "extra",
    [
        ["train.mode=sampled", "train.fanouts=[5, 3]"],
        ["model.aggregation=mean", "model.conv_weights=true", "model.layer_combination=last"],
        ["model.aggregation=max", "model.text_features=false"],
        ["model.id_embeddings=false"],
        ["model.name=gat"],
        ["model.name=gat", "model.conv_weights=true", "train.mode=sampled", "train.fanouts=[5, 3]"],
        ["model.name=ncf"],
        ["model.name=ncf", "model.text_features=false", "model.id_dropout=0.0"],
    ],
)
def test_model_variants_train_and_beat_popularity(planted_dir, feature_cache, tmp_path, extra):
    metrics = train_run(planted_config(planted_dir, feature_cache, tmp_path / "run", *extra))
    assert metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]


def test_rating_objective_reports_mae_and_rmse(planted_dir, feature_cache, tmp_path):
    metrics = train_run(
        planted_config(planted_dir, feature_cache, tmp_path / "run", "train.objective=mse")
    )
    baseline = metrics["baselines"]["global_mean"]
    assert 0 < metrics["mae"] <= metrics["rmse"]
    assert metrics["rmse"] < 2 * baseline["rmse"]
    assert 0 < metrics["baselines"]["biases"]["mae"] <= metrics["baselines"]["biases"]["rmse"]


def test_cold_item_split_ranks_unseen_items_from_text(planted_dir, feature_cache, tmp_path):
    metrics = train_run(
        planted_config(
            planted_dir,
            feature_cache,
            tmp_path / "run",
            "data.split=cold_items",
            "data.cold_item_fraction=0.3",
            "eval.ks=[3, 20]",
        )
    )
    cold = metrics["cold"]
    assert cold["n_cold_items"] == 18
    assert cold["recall@3"] > 1.5 * metrics["baselines"]["random"]["cold"]["recall@3"]


KILLER = textwrap.dedent("""
    import os, signal, sys
    from gnnrec.config import load_config
    from gnnrec.run import train_run
    kill_at = int(sys.argv[2])
    def on_step(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    train_run(load_config(sys.argv[1]), on_step=on_step)
""")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(planted_dir, feature_cache, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    configs = {}
    for name in ("straight", "killed"):
        config = planted_config(planted_dir, feature_cache, tmp_path / name)
        configs[name] = tmp_path / f"{name}.toml"
        save_config(config, configs[name])
    subprocess.run(
        [sys.executable, "-m", "gnnrec.cli", "train", "--config", str(configs["straight"])],
        env=env,
        check=True,
        capture_output=True,
    )
    first_epoch = json.loads((tmp_path / "straight" / "metrics.jsonl").open().readline())
    steps_per_epoch = first_epoch["step"]
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(configs["killed"]), str(3 * steps_per_epoch + 2)],
        env=env,
        capture_output=True,
    )
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "metrics.json").exists()
    partial = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert len(partial) == 3
    subprocess.run(
        [sys.executable, "-m", "gnnrec.cli", "train", "--config", str(configs["killed"])],
        env=env,
        check=True,
        capture_output=True,
    )
    straight = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    resumed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert resumed == straight
    a = torch.load(tmp_path / "straight" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "killed" / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_ends_a_run_that_stops_improving(planted_dir, feature_cache, tmp_path):
    config = planted_config(
        planted_dir, feature_cache, tmp_path / "run", "train.lr=1e-12", "train.patience=2"
    )
    metrics = train_run(config)
    assert metrics["epochs_run"] == 3  # epoch 1 sets the best; 2 and 3 do not beat it
    assert metrics["best_epoch"] == 1


def test_validation_can_rank_a_fixed_sample_of_users(planted_dir, feature_cache, tmp_path):
    def validated(run: str, *extra: str) -> list[int]:
        config = planted_config(
            planted_dir, feature_cache, tmp_path / run, "train.epochs=2", *extra
        )
        train_run(config)
        rows = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(row)["valid_users"] for row in rows]

    everyone = validated("all")
    assert everyone[0] == everyone[1] > 12
    assert validated("sample", "train.valid_users=12") == [12, 12]


def test_an_epoch_can_be_capped_to_its_first_batches(planted_dir, feature_cache, tmp_path):
    def history(run: str, *extra: str) -> list[dict]:
        common = ["train.epochs=2", "train.batch_size=32", *extra]
        train_run(planted_config(planted_dir, feature_cache, tmp_path / run, *common))
        return [json.loads(row) for row in (tmp_path / run / "metrics.jsonl").open()]

    whole = history("whole")
    capped = history("capped", "train.steps_per_epoch=3")
    assert [(row["step"], row["examples"]) for row in capped] == [(3, 96), (6, 96)]
    assert whole[0]["step"] > 3 and whole[0]["examples"] > 96


def test_encode_command_fills_the_cache_once(planted_dir, feature_cache, tmp_path, capsys):
    from gnnrec.cli import main

    config = planted_config(planted_dir, tmp_path / "cache", tmp_path / "run")
    save_config(config, tmp_path / "c.toml")
    assert main(["encode", "--config", str(tmp_path / "c.toml")]) == 0
    first = capsys.readouterr().out
    assert main(["encode", "--config", str(tmp_path / "c.toml")]) == 0
    second = capsys.readouterr().out
    assert ": 108 distinct texts encoded now" in first  # 48 users + 60 items, all distinct
    assert ": 0 distinct texts encoded now" in second


def test_resuming_with_another_configuration_is_refused(planted_dir, feature_cache, tmp_path):
    train_run(planted_config(planted_dir, feature_cache, tmp_path / "run", "train.epochs=2"))
    longer = train_run(
        planted_config(planted_dir, feature_cache, tmp_path / "run", "train.epochs=3")
    )
    assert longer["epochs_run"] == 3  # more epochs: resumed from epoch 2
    with pytest.raises(ValueError, match=r"different model\.hidden"):
        train_run(planted_config(planted_dir, feature_cache, tmp_path / "run", "model.hidden=8"))


def test_pinned_sampling_without_a_gpu_is_explained(planted_dir, feature_cache, tmp_path):
    extra = ["train.mode=sampled", "train.fanouts=[5, 3]", "train.sample_on=pinned"]
    extra.append("train.device=cpu")
    with pytest.raises(ValueError, match="needs a model on a GPU"):
        train_run(planted_config(planted_dir, feature_cache, tmp_path / "run", *extra))


def test_lightgcn_files_train_without_text_or_validation(tmp_path, feature_cache):
    folder = tmp_path / "lgcn"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    train_lines, test_lines = [], []
    for user in range(40):
        block = (user % 4) * 10  # four communities of ten items
        items = (block + torch.randperm(10, generator=g)[:6]).tolist()
        train_lines.append(" ".join(map(str, [user, *items[:4]])))
        test_lines.append(" ".join(map(str, [user, *items[4:]])))
    (folder / "train.txt").write_text("\n".join(train_lines) + "\n")
    (folder / "test.txt").write_text("\n".join(test_lines) + "\n")
    config = load_config(
        None,
        [
            f'run_dir="{tmp_path / "run"}"',
            "data.dataset=lightgcn",
            f'data.path="{folder}"',
            "data.valid_fraction=0.0",
            "model.text_features=false",
            "model.hidden=16",
            "train.epochs=15",
            "train.batch_size=32",
            "train.lr=0.02",
            "train.progress=false",
            "train.patience=2",
            "eval.ks=[5, 20]",
        ],
    )
    metrics = train_run(config)
    assert metrics["epochs_run"] == 15 and metrics["best_epoch"] == 15  # no early stop
    assert metrics["split"] == "predefined"
    assert metrics["recall@5"] > 2 * metrics["baselines"]["popularity"]["recall@5"]


def test_a_diverging_run_stops_and_says_so(planted_dir, feature_cache, tmp_path):
    config = planted_config(planted_dir, feature_cache, tmp_path / "run", "train.lr=1e30")
    with pytest.raises(ValueError, match="training diverged: the mean loss of epoch 1"):
        train_run(config)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_spilled_data_reads_the_same_from_disk(planted_dir, feature_cache, tmp_path):
    from gnnrec.pipeline import data_fingerprint, prepare

    prepared = prepare(planted_config(planted_dir, feature_cache, tmp_path / "run"))
    fingerprint, test = data_fingerprint(prepared), prepared.test
    (tmp_path / "spilled").mkdir()
    prepared.spill(tmp_path / "spilled")
    for array in (prepared.graph.interactions.user, prepared.split.train):
        assert not array.flags.writeable and not array.flags.owndata  # mapped from the files
    assert data_fingerprint(prepared) == fingerprint
    assert all(np.array_equal(a, b) for a, b in zip(prepared.test, test, strict=True))
