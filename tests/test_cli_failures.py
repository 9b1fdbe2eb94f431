"""The CLI under bad input and misuse: one line naming the culprit, exit 2, no traceback, and
nothing on disk changed."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
import torch
from helpers import error_line, parse_refusal, planted_sets
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gnnrec.cli import main
from gnnrec.common.run_lock import run_dir_lock


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (the lock file and the run's log aside) with its sha256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (".gnnrec.lock", "gnnrec.log")  # the log records tries
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, planted_dir, feature_cache) -> Path:
    run_dir = tmp_path_factory.mktemp("cli-failures") / "run"
    args = ["train", "--run-dir", str(run_dir)]
    args += planted_sets(planted_dir, feature_cache, "train.epochs=2")
    assert main(args) == 0
    return run_dir


@pytest.mark.parametrize(
    "content",
    [b"", b"PK\x03\x04 truncated zip", bytes(range(256)) * 4],
    ids=["empty", "truncated", "random"],
)
def test_a_corrupt_model_is_named_before_any_work(trained_run, tmp_path, capsys, content):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "model.pt").write_bytes(content)
    before = snapshot(run_dir)
    err = error_line(capsys, main(["evaluate", "--run-dir", str(run_dir)]))
    assert f"{run_dir / 'model.pt'}: not a readable gnnrec checkpoint" in err
    err = error_line(capsys, main(["recommend", "--run-dir", str(run_dir)]))
    assert "model.pt: not a readable gnnrec checkpoint" in err
    assert snapshot(run_dir) == before


def test_a_corrupt_resume_checkpoint_is_named(trained_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    before = snapshot(run_dir)
    err = error_line(capsys, main(["train", "--run-dir", str(run_dir), "--set", "train.epochs=3"]))
    assert f"{last}: not a readable gnnrec checkpoint" in err and "remove it" in err
    assert snapshot(run_dir) == before


def test_a_second_writer_is_refused(trained_run, capsys):
    before = snapshot(trained_run)
    with run_dir_lock(trained_run):
        err = error_line(capsys, main(["train", "--run-dir", str(trained_run)]))
        assert "is in use by another gnnrec process" in err
        err = error_line(capsys, main(["evaluate", "--run-dir", str(trained_run)]))
        assert "is in use by another gnnrec process" in err
    assert snapshot(trained_run) == before


def test_recommend_refuses_empty_text_and_k_0(trained_run, capsys):
    before = snapshot(trained_run)
    err = error_line(capsys, main(["recommend", "--run-dir", str(trained_run), "--text", " "]))
    assert "--text is empty" in err
    err = parse_refusal(capsys, ["recommend", "--run-dir", str(trained_run), "-k", "0"])
    assert "argument -k: 0 is below 1" in err
    missing = trained_run.parent / "no-such-folder"
    out = ["--run-dir", str(trained_run), "--output", str(missing / "top.csv")]
    err = error_line(capsys, main(["recommend", *out]))
    assert f"{missing} does not exist" in err and not missing.exists()
    assert snapshot(trained_run) == before


def test_synth_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    err = error_line(capsys, main(["synth", "--output", str(tmp_path), "--users", "10"]))
    assert "is not empty" in err and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_saved_config_has_absolute_data_paths(trained_run):
    from gnnrec.config import load_config

    saved = load_config(trained_run / "config.toml")
    for path in (saved.data.path, saved.data.options["items_path"], saved.encoder.cache_dir):
        assert Path(path).is_absolute(), path


def write_table(folder: Path, rows: list[tuple[str, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "interactions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["user_id", "item_id"])
        writer.writerows(rows)
    return folder / "interactions.csv"


def test_data_without_text_refuses_text_features(tmp_path, capsys):
    table = write_table(
        tmp_path / "t", [(f"u{u}", f"i{(u + k) % 9}") for u in range(12) for k in range(5)]
    )
    args = ["train", "--run-dir", str(tmp_path / "run"), "--set", "data.dataset=table"]
    err = error_line(capsys, main([*args, "--set", f'data.path="{table}"']))
    assert "has no user or item text" in err and "model.text_features = false" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU this machine must lack")
def test_options_work_after_the_command_and_a_missing_device_is_caught_first(tmp_path, capsys):
    err = error_line(
        capsys,
        main(
            ["train", "--quiet", "--run-dir", str(tmp_path / "run"), "--set", "train.device=cuda"]
        ),
    )
    assert "torch sees no GPU" in err and not (tmp_path / "run").exists()


def test_a_table_too_small_to_split_is_explained(tmp_path, capsys):
    table = write_table(tmp_path / "t", [("u1", "i1"), ("u2", "i2")])
    args = ["train", "--run-dir", str(tmp_path / "run"), "--set", "data.dataset=table"]
    args += ["--set", f'data.path="{table}"', "--set", "model.text_features=false"]
    err = error_line(capsys, main(args))
    assert "left no test interactions" in err
    assert not (tmp_path / "run").exists()  # a failed new run leaves no folder behind


def test_duplicate_interactions_are_collapsed_and_reported(tmp_path, caplog):
    from gnnrec.data import DataConfig, load_dataset

    rows = [(f"u{u}", f"i{(u + k) % 9}") for u in range(12) for k in range(5)]
    once = write_table(tmp_path / "once", rows)
    twice = write_table(tmp_path / "twice", rows + rows)
    graph_once, split_once = load_dataset(DataConfig(dataset="table", path=str(once)))
    with caplog.at_level("WARNING", logger="gnnrec"):
        graph_twice, split_twice = load_dataset(DataConfig(dataset="table", path=str(twice)))
    assert "60 duplicate user-item interactions collapsed" in caplog.text
    for key in ("user", "item"):
        once_pairs = getattr(graph_once.interactions, key)
        assert (getattr(graph_twice.interactions, key) == once_pairs).all()
    assert (split_twice.test == split_once.test).all()


VALUES = st.one_of(
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet="abc-", max_size=4).map(lambda s: f'"{s}"'),
    st.just("[1, 2]"),
)
KEYS = st.sampled_from(
    [
        "train.epochs",
        "train.batch_size",
        "train.lr",
        "train.fanouts",
        "train.mode",
        "model.hidden",
        "model.layers",
        "model.aggregation",
        "model.id_dropout",
        "data.split",
        "data.test_fraction",
        "eval.ks",
        "parallel.num_workers",
        "encoder.max_length",
    ]
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(KEYS, VALUES)
def test_any_bad_setting_is_one_line_naming_its_key(capsys, key, value):
    """(capsys is read after every example, so examples do not see each other's output.)"""
    code = main(["config", "show", "--set", f"{key}={value}"])
    captured = capsys.readouterr()
    if code == 0:
        assert captured.out.startswith("run_dir = ")  # a valid setting: shown, as TOML
        return
    err = captured.err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    section, name = key.split(".")
    assert name in err or section in err, err


def test_data_changed_after_training_is_refused_unless_allowed(tmp_path, feature_cache, capsys):
    from conftest import write_planted_dataset

    data = write_planted_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    args = ["train", "--run-dir", str(run_dir)]
    args += planted_sets(data, feature_cache, "train.epochs=1")
    assert main(args) == 0
    capsys.readouterr()
    write_planted_dataset(data, seed=7)  # same sizes, other interactions
    before = snapshot(run_dir)
    err = error_line(capsys, main(["evaluate", "--run-dir", str(run_dir)]))
    assert "the data changed since" in err and "--allow-data-change" in err
    err = error_line(capsys, main(["recommend", "--run-dir", str(run_dir)]))
    assert "the data changed since" in err
    err = error_line(capsys, main(["train", "--run-dir", str(run_dir), "--set", "train.epochs=2"]))
    assert "the data changed since" in err
    assert snapshot(run_dir) == before
    assert main(["evaluate", "--run-dir", str(run_dir), "--allow-data-change"]) == 0


@pytest.mark.slow  # a fresh interpreter per case
@pytest.mark.parametrize(
    "case",
    ["flipped-bit-model", "folder-as-config", "missing-data", "bad-type", "url-refused"],
)
def test_the_real_command_fails_in_one_line(trained_run, tmp_path, case):
    """Through the installed ``gnnrec`` entry point in a subprocess, as a user runs it."""
    import shutil
    import subprocess
    import sys

    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    if case == "flipped-bit-model":
        raw = bytearray((run_dir / "model.pt").read_bytes())
        raw[len(raw) // 2] ^= 0x10  # inside the tensor data
        (run_dir / "model.pt").write_bytes(bytes(raw))
        args, culprit = ["evaluate", "--run-dir", str(run_dir)], "model.pt: damaged"
    elif case == "folder-as-config":
        args, culprit = ["train", "--config", str(tmp_path)], f"{tmp_path}: is a folder"
    elif case == "missing-data":
        missing = tmp_path / "nope.csv"
        args = ["train", "--run-dir", str(tmp_path / "r"), "--set", "data.dataset=table"]
        args += ["--set", f'data.path="{missing}"', "--set", "model.text_features=false"]
        culprit = f"{missing}: no such file or folder"
    elif case == "bad-type":
        args, culprit = ["train", "--set", "train.batch_size=true"], "train.batch_size must be"
    else:
        args = ["train", "--run-dir", str(tmp_path / "r"), "--set", "data.dataset=ml-1m"]
        args += ["--set", 'data.path="http://127.0.0.1:9/ml-1m.zip"', "--set", 'data.sha256="00"']
        culprit = "download failed"
    before = snapshot(run_dir)
    done = subprocess.run(
        [sys.executable, "-m", "gnnrec.cli", *args], capture_output=True, text=True, cwd=tmp_path
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("gnnrec ")]
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and culprit in errors[0], done.stderr
    assert snapshot(run_dir) == before


CELLS = st.sampled_from(["", "nan", "inf", "-inf", "abc", "1e400", "-1", "3.5", " 4 ", "u1"])


@pytest.mark.slow  # a fresh interpreter and a small training run per example
@pytest.mark.parametrize("kind", ["cut", "cell", "byte"])
@settings(max_examples=6)
@given(data=st.data())
def test_a_damaged_table_trains_or_fails_in_one_line(tmp_path_factory, kind, data):
    """A valid interaction table, then damaged: cut at a byte, a cell replaced (empty, NaN,
    inf, words, numbers) or a byte changed. ``gnnrec train``, run as a user runs it (the entry
    point, in a subprocess), either trains on what is valid or stops in one line naming the
    file, and a failed new run leaves no folder."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("damaged")
    rows = [
        (f"u{u}", f"i{(u * 7 + k) % 23}", str(1 + (u + k) % 5), str(100 + k))
        for u in range(20)
        for k in range(6)
    ]
    lines = ["user_id,item_id,rating,ts"] + [",".join(r) for r in rows]
    text = "\n".join(lines) + "\n"
    if kind == "cut":
        text = text[: data.draw(st.integers(0, len(text) - 1))]
    elif kind == "cell":
        r, c = data.draw(st.integers(1, len(lines) - 1)), data.draw(st.integers(0, 3))
        cells = lines[r].split(",")
        cells[c] = data.draw(CELLS)
        lines[r] = ",".join(cells)
        text = "\n".join(lines) + "\n"
    else:
        at = data.draw(st.integers(0, len(text) - 1))
        text = (
            text[:at] + data.draw(st.sampled_from([",", '"', "\n", "x", "\x00"])) + text[at + 1 :]
        )
    table = folder / "interactions.csv"
    table.write_text(text)
    run_dir = folder / "run"
    args = ["train", "--run-dir", str(run_dir), "--set", "data.dataset=table"]
    for item in (
        f'data.path="{table}"',
        'data.options.rating_column="rating"',
        'data.options.timestamp_column="ts"',
        "model.text_features=false",
        "model.hidden=8",
        "train.epochs=1",
        "train.progress=false",
    ):
        args += ["--set", item]
    done = subprocess.run(
        [sys.executable, "-m", "gnnrec.cli", *args], capture_output=True, text=True, cwd=folder
    )
    code = done.returncode
    event(f"{kind}: exit {code}")
    assert "Traceback" not in done.stderr, done.stderr
    if code == 0:
        assert (run_dir / "metrics.json").is_file()
        return
    errors = [line for line in done.stderr.splitlines() if line.startswith("gnnrec ")]
    assert code == 2 and len(errors) == 1, done.stderr
    assert str(table) in errors[0] or "interactions" in errors[0], errors[0]
    assert not run_dir.exists()


NUMBERS = [  # (command line, flag): a value out of range, NaN, or no number at all
    (["update", "--run-dir", "r", "--data", "d.csv", "--epochs", "0"], "--epochs"),
    (["update", "--run-dir", "r", "--data", "d.csv", "--lr-scale", "nan"], "--lr-scale"),
    (["update", "--run-dir", "r", "--data", "d.csv", "--replay", "-1"], "--replay"),
    (["serve", "--run-dir", "r", "--replicas", "0"], "--replicas"),
    (["serve", "--run-dir", "r", "--port", "x"], "--port"),
    (["similar", "--run-dir", "r", "--items", "1", "-k", "1.5"], "-k"),
    (["recommend", "--run-dir", "r", "--num-workers", "0"], "--num-workers"),
    (["export", "--run-dir", "r", "--num-workers", "-1"], "--num-workers"),
    (["synth", "--output", "s", "--users", "0"], "--users"),
    (["synth", "--output", "s", "--affinity", "1.5"], "--affinity"),
    (["synth", "--output", "s", "--interactions-per-user", "inf"], "--interactions-per-user"),
    (["synth", "--output", "s", "--workers", "0"], "--workers"),
    (["synth", "--output", "s", "--seed", "-1"], "--seed"),
    (["demo", "--users", "-1"], "--users"),
    (["encode", "--shard-size", "0"], "--shard-size"),
    (["train", "--num-workers", "-2"], "--num-workers"),
]


@pytest.mark.parametrize("argv, flag", NUMBERS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in NUMBERS])
def test_every_numeric_flag_is_checked_as_it_is_parsed(tmp_path, monkeypatch, capsys, argv, flag):
    monkeypatch.chdir(tmp_path)  # nothing is written, wherever the call runs
    assert f"argument {flag}: " in parse_refusal(capsys, argv)
    assert not any(tmp_path.iterdir())
