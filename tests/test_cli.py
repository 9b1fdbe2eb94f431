"""The command line: help for every command, and train -> evaluate -> recommend on real files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import planted_config

from gnnrec.cli import main
from gnnrec.config import save_config
from gnnrec.run import load_run


@pytest.mark.parametrize(
    "command",
    [
        "demo",
        "encode",
        "train",
        "evaluate",
        "recommend",
        "export",
        "config",
        "submit",
        "synth",
        "bench",
    ],
)
def test_every_command_has_help(command):
    out = subprocess.run(
        [sys.executable, "-m", "gnnrec.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"usage: gnnrec {command}" in out


def test_train_evaluate_recommend(planted_dir, feature_cache, tmp_path, capsys):
    run_dir = tmp_path / "run"
    config_file = tmp_path / "run.toml"
    save_config(planted_config(planted_dir, feature_cache, run_dir), config_file)
    assert main(["train", "--config", str(config_file), "--set", "train.epochs=4"]) == 0
    out = capsys.readouterr().out
    assert "GCN on text + IDs" in out and "popularity baseline" in out
    import torch

    assert f"trained on: {'cuda' if torch.cuda.is_available() else 'cpu'}" in out  # "auto"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("recall@20", "ndcg@20", "n_users_evaluated", "dataset", "split", "model"):
        assert key in metrics
    assert "recall@20" in metrics["baselines"]["popularity"]
    assert metrics["epochs_run"] == 4

    (run_dir / "metrics.json").unlink()
    assert main(["evaluate", "--run-dir", str(run_dir)]) == 0
    again = json.loads((run_dir / "metrics.json").read_text())
    assert again["recall@20"] == metrics["recall@20"]

    out_csv = tmp_path / "top.csv"
    assert main(["recommend", "--run-dir", str(run_dir), "-k", "5", "--output", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 48 * 5 and rows[0]["rank"] == "1"
    _, prepared, _ = load_run(run_dir)
    graph, train = prepared.graph, prepared.data.train
    seen = {(graph.users.ids[u], graph.items.ids[i]) for u, i in zip(train[0], train[1])}
    assert not [r for r in rows if (r["user_id"], r["item_id"]) in seen]

    pq = pytest.importorskip("pyarrow.parquet")
    out_parquet = tmp_path / "top.parquet"
    assert (
        main(["recommend", "--run-dir", str(run_dir), "-k", "3", "--output", str(out_parquet)]) == 0
    )
    assert pq.read_table(out_parquet).num_rows == 48 * 3

    capsys.readouterr()
    assert (
        main(
            [
                "recommend",
                "--run-dir",
                str(run_dir),
                "-k",
                "5",
                "--text",
                "I only watch space stories about rockets and planets",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5
    assert sum("space" in line for line in lines) >= 4


def test_errors_are_reported_without_a_traceback(tmp_path, capsys):
    assert main(["evaluate", "--run-dir", str(tmp_path)]) == 2
    assert "train the run first" in capsys.readouterr().err
    assert main(["train", "--set", "model.hidden=0"]) == 2
    assert "hidden >= 1" in capsys.readouterr().err


def test_run_dir_alone_resumes_with_the_saved_configuration(planted_dir, feature_cache, tmp_path):
    run_dir = tmp_path / "run"
    config_file = tmp_path / "run.toml"
    save_config(planted_config(planted_dir, feature_cache, run_dir, "train.epochs=2"), config_file)
    assert main(["train", "--config", str(config_file)]) == 0
    assert main(["train", "--run-dir", str(run_dir), "--set", "train.epochs=3"]) == 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert json.loads((run_dir / "metrics.json").read_text())["dataset"] == "interactions"


@pytest.mark.slow
def test_encode_command_writes_sharded_features(planted_dir, feature_cache, tmp_path, capsys):
    import numpy as np
    import torch

    config_file = tmp_path / "run.toml"
    save_config(planted_config(planted_dir, feature_cache, tmp_path / "run"), config_file)
    out = tmp_path / "features"
    args = ["encode", "--config", str(config_file), "--num-workers", "2", "--shard-size", "40"]
    assert main([*args, "--output", str(out)]) == 0
    assert "108 node features of dimension 384" in capsys.readouterr().out
    sharded = torch.from_numpy(np.load(out / "features.npy").astype(np.float32))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_texts"] == 108 and manifest["shard_size"] == 40
    assert manifest["item_template"] == "" and manifest["dtype"] == "float16"
    from gnnrec.config import load_config
    from gnnrec.pipeline import prepare

    cached = prepare(load_config(config_file), progress=False).data.features  # via the cache
    torch.testing.assert_close(sharded, cached, atol=2e-3, rtol=0)


def test_lightgcn_recipe_trains_a_lightgcn_folder_in_one_command(tmp_path, capsys):
    folder = tmp_path / "lgcn"
    folder.mkdir()
    (folder / "train.txt").write_text(
        "".join(f"{u} {u % 5} {5 + u % 3} {8 + u % 2}\n" for u in range(30))
    )
    (folder / "test.txt").write_text("".join(f"{u} {(u + 1) % 5}\n" for u in range(30)))
    args = [
        "train",
        "--recipe",
        "lightgcn_paper",
        "--run-dir",
        str(tmp_path / "run"),
        "--set",
        f'data.path="{folder}"',
        "--set",
        "train.epochs=4",
        "--set",
        "train.eval_every=2",
        "--set",
        "train.progress=false",
    ]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model"] == "lightgcn" and metrics["split"] == "predefined"
    assert metrics["n_users_evaluated"] == 30 and metrics["epochs_run"] == 4
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert 'name = "lightgcn"' in saved and "lr = 0.001" in saved and "l2 = 0.0001" in saved


def test_the_cold_start_line_names_the_model_trained(capsys):
    from gnnrec.commands import _print_metrics

    row = {"recall@20": 0.1, "ndcg@20": 0.05}
    metrics = {
        "model_label": "GAT on IDs",
        **row,
        "baselines": {"popularity": row},
        "cold": {**row, "n_cold_items": 7},
        "n_users_evaluated": 3,
        "dataset": "toy",
        "split": "random",
    }
    _print_metrics(metrics)
    out = capsys.readouterr().out
    assert "GAT, cold items only" in out and "GCN" not in out


HUGE_PAGE_PROBE = """
import sys
import gnnrec.__main__ as entry
sys.argv = ["gnnrec", "--version"]
try:
    entry.main()
except SystemExit:  # --version exits
    pass
import torch
t = torch.ones(16 << 20)  # 64 MB, touched
print(next(l for l in open("/proc/self/smaps_rollup") if l.startswith("AnonHugePages")).split()[1])
"""


def test_the_command_line_puts_large_cpu_tensors_on_huge_pages():
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not mode.exists() or "[never]" in mode.read_text():
        pytest.skip("this kernel gives no transparent huge pages")

    def huge_kb(**env: str) -> int:
        """kB of the probe process's memory on huge pages, run with ``env`` over ours (the
        switch itself left out: the entry point sets it)."""
        base = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
        run = subprocess.run(
            [sys.executable, "-c", HUGE_PAGE_PROBE],
            env={**base, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return int(run.stdout.split()[-1])

    assert huge_kb() > 0
    if "[madvise]" in mode.read_text():  # only what torch asks for gets huge pages
        assert huge_kb(THP_MEM_ALLOC_ENABLE="0") == 0
