"""Every artifact belongs to its run: a ``model.pt`` or ``last.pt`` from another run of the same
shapes, or a run whose text changed under a text model, is refused naming what differs; the
export records whose it is."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from helpers import error_line, planted_overrides

from gnnrec.cli import main


def train(run_dir: Path, overrides: list[str]) -> None:
    args = ["train", "--run-dir", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    assert main(args) == 0


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, planted_dir, feature_cache) -> tuple[Path, Path, list[str]]:
    """Two runs of the same shapes: ``a`` and ``b`` differ only in the learning rate."""
    root = tmp_path_factory.mktemp("provenance")
    base = [*planted_overrides(planted_dir, feature_cache), "train.epochs=2"]
    train(root / "a", base)
    train(root / "b", [*base, "train.lr=0.05"])
    return root / "a", root / "b", base


def test_a_model_from_another_run_of_the_same_shapes_is_refused(two_runs, tmp_path, capsys):
    a, b, _ = two_runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    shutil.copy(b / "model.pt", run / "model.pt")
    for command in (["evaluate"], ["recommend"], ["export"], ["serve"]):  # serve: before Ray
        line = error_line(capsys, main([*command, "--run-dir", str(run)]))
        assert "model.pt belongs to another run" in line and "train.lr 0.05 != 0.02" in line
    assert main(["evaluate", "--run-dir", str(a)]) == 0  # its own model loads


def test_resuming_from_another_runs_checkpoint_is_refused(two_runs, tmp_path, capsys):
    a, b, base = two_runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    shutil.copy(b / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    args = ["train", "--run-dir", str(run)]
    for item in [*base, "train.epochs=3"]:
        args += ["--set", item]
    line = error_line(capsys, main(args))
    assert "last.pt belongs to another run" in line and "train.lr" in line


def test_changed_text_is_refused_by_a_text_model_only(two_runs, tmp_path, capsys, planted_dir):
    a, _, base = two_runs
    items = tmp_path / "items.csv"
    rows = list(csv.reader((planted_dir / "items.csv").open()))
    rows[1][1] = rows[1][1] + " (remastered)"  # one title changed
    with items.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    run = tmp_path / "run"
    shutil.copytree(a, run)
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace(str(planted_dir / "items.csv"), str(items)))
    line = error_line(capsys, main(["evaluate", "--run-dir", str(run)]))
    assert "text changed" in line and "--allow-data-change" in line
    assert main(["evaluate", "--run-dir", str(run), "--allow-data-change"]) == 0
    ids = tmp_path / "ids"
    train(ids, [*base, "model.text_features=false"])
    config = (ids / "config.toml").read_text()
    (ids / "config.toml").write_text(config.replace(str(planted_dir / "items.csv"), str(items)))
    assert main(["evaluate", "--run-dir", str(ids)]) == 0  # an ID model reads no text


def test_the_export_records_its_run(two_runs, tmp_path):
    a, _, _ = two_runs
    assert main(["export", "--run-dir", str(a), "--output", str(tmp_path / "x")]) == 0
    meta = json.loads((tmp_path / "x" / "export.json").read_text())
    provenance = meta["provenance"]
    assert provenance["model"] == "gcn" and len(provenance["data_sha256"]) == 64
    assert provenance["settings"]["train.lr"] == 0.02
    assert not any(key.endswith("path") for key in provenance["settings"])


def test_a_setting_added_since_an_artifact_was_written_counts_as_its_default(two_runs, tmp_path):
    """An older gnnrec did what a new setting's default does: a model.pt that does not record
    the setting is accepted under the default and refused under another value."""
    import torch

    from gnnrec.train.checkpoint import PROVENANCE, load_checkpoint, save_checkpoint

    a, _, _ = two_runs
    run = tmp_path / "run"
    shutil.copytree(a, run)
    state = load_checkpoint(run / "model.pt")
    del state[PROVENANCE]["settings"]["data.new_user_fraction"]  # written before it existed
    save_checkpoint(state, run / "model.pt")
    assert main(["evaluate", "--run-dir", str(run)]) == 0
    config = run / "config.toml"
    config.write_text(
        config.read_text().replace("new_user_fraction = 0.1", "new_user_fraction = 0.2")
    )
    assert main(["evaluate", "--run-dir", str(run)]) == 2
    assert torch.load(run / "model.pt", weights_only=True)[PROVENANCE]["model"] == "gcn"
