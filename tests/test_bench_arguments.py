"""Bench flags are checked as they are parsed: a bad number or a results file that would
overwrite what no bench wrote is refused by name before anything is measured or written."""

from __future__ import annotations

import argparse
import json

import pytest
from helpers import error_line

from gnnrec.bench.arguments import results_file
from gnnrec.cli import main
from gnnrec.common.flags import real, whole


@pytest.mark.parametrize("text", ["0", "-3", "nan", "1.5", "x", "1e3"])
def test_a_count_below_its_minimum_or_not_whole_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        whole(1)(text)


def test_a_count_at_its_minimum_is_taken():
    assert whole(0)("0") == 0 and whole(1)("7") == 7


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "0", "1", "-0.5", "x"])
def test_a_fraction_outside_its_open_range_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        real(high=1.0)(text)


def test_closed_ends_take_their_bounds_and_an_infinite_closed_end_takes_inf():
    assert real(high=1.0, high_open=False)("1") == 1.0
    assert real(low_open=False)("0") == 0.0
    assert real(high_open=False)("inf") == float("inf")
    with pytest.raises(argparse.ArgumentTypeError):
        real()("inf")


def test_a_results_file_is_new_or_holds_bench_rows(tmp_path):
    fresh = tmp_path / "new.jsonl"
    assert results_file(str(fresh)) == fresh
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"bench": "steps", "x": 1}) + "\n")
    (tmp_path / "rows.png").write_bytes(b"png")  # that file's own plot
    assert results_file(str(rows)) == rows


@pytest.mark.parametrize(
    "name, refusal",
    [
        ("notes.txt", "a .jsonl file"),
        ("folder.jsonl", "is a folder"),
        ("mine.jsonl", "holds no bench results"),
        ("lonely.jsonl", "would replace a file"),
        ("notes.txt/x.jsonl", "is a file, not a folder"),
    ],
)
def test_a_results_file_that_would_overwrite_other_files_is_refused(tmp_path, name, refusal):
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "folder.jsonl").mkdir()
    (tmp_path / "mine.jsonl").write_text('{"my": "data"}\n')
    (tmp_path / "lonely.png").write_bytes(b"my picture")
    with pytest.raises(argparse.ArgumentTypeError, match=refusal):
        results_file(str(tmp_path / name))


def test_every_bench_refuses_a_bad_output_or_number_before_it_runs(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    picture = tmp_path / "plot.png"
    picture.write_bytes(b"my picture")
    for argv, named in [
        (["bench", "updates", "--output", str(notes)], "--output"),
        (["bench", "serving", "--output", str(tmp_path / "plot.jsonl")], "plot.png"),
        (["bench", "serving", "--seconds", "nan"], "--seconds"),
        (["bench", "steps", "--warmup", "-1"], "--warmup"),
        (["bench", "sampling", "--batch-size", "0"], "--batch-size"),
        (["bench", "updates", "--base", "1.5"], "--base"),
    ]:
        with pytest.raises(SystemExit) as parsed:  # argparse's exit, as for every command
            main(argv)
        assert named in error_line(capsys, parsed.value.code)
    assert notes.read_text() == "my notes\n" and picture.read_bytes() == b"my picture"


def test_the_steps_bench_refuses_a_log_of_other_sizes_and_too_short_an_epoch(tmp_path, capsys):
    data, out = tmp_path / "data", tmp_path / "steps.jsonl"
    args = ["--data", str(data), "--run-dir", str(tmp_path / "runs" / "run")]
    args += ["--output", str(out), "--users", "50", "--items", "20", "--steps", "3"]
    line = error_line(capsys, main(["bench", "steps", *args]))
    assert "an epoch of this data has 1 steps" in line and "--steps 3" in line
    line = error_line(capsys, main(["bench", "steps", *args, "--users", "60"]))
    assert f"{data} holds another log (num_users 50" in line
    assert not out.exists()
