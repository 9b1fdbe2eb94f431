"""Long work says what stage it is in: stage lines, epochs as table rows, a run's own log file,
and the console's level from ``-v``, ``--quiet`` or ``GNNREC_LOG_LEVEL``."""

from __future__ import annotations

from helpers import error_line, planted_sets

from gnnrec.cli import main
from gnnrec.train.trainer import epoch_line


def test_an_epoch_is_a_table_row():
    row = {"epoch": 3, "loss": 0.123456, "valid_recall@20": 0.15, "valid_users": 48, "seconds": 2.5}
    assert epoch_line(row, 30) == "epoch  3/30  loss 0.1235  recall@20 0.1500  users 48     2.5 s"


def test_a_run_logs_its_stages_and_epochs_to_its_folder(
    planted_dir, feature_cache, tmp_path, capsys, monkeypatch
):
    run = tmp_path / "run"
    args = ["train", "--run-dir", str(run)]
    args += planted_sets(planted_dir, feature_cache, "train.epochs=2")
    monkeypatch.setenv("GNNREC_LOG_LEVEL", "WARNING")
    assert main(args) == 0
    console = capsys.readouterr().err
    assert "epoch 1/2" not in console  # the console at WARNING
    log = (run / "gnnrec.log").read_text()  # the file at INFO, whatever the console
    for line in (
        "INFO gnnrec.run: prepare ...",
        "prepare: done in",
        "train: done in",
        "epoch 1/2  loss",
        "epoch 2/2  loss",
        "recommend: done in",
    ):
        assert line in log, line
    monkeypatch.setenv("GNNREC_LOG_LEVEL", "INFO")
    assert main([*args, "--set", "train.epochs=3", "-v"]) == 0
    assert "resuming from epoch 3 of 3 (2 done)" in capsys.readouterr().err
    assert main(args) == 0
    assert "3 epochs done, train.epochs = 2: nothing to train" in capsys.readouterr().err


def test_an_unknown_log_level_is_named(monkeypatch, capsys):
    monkeypatch.setenv("GNNREC_LOG_LEVEL", "LOUD")
    line = error_line(capsys, main(["config", "show"]))
    assert "GNNREC_LOG_LEVEL='LOUD' is no log level" in line
