"""Nothing deleted that gnnrec did not write: every output flag of every command against
existing files, foreign folders, ``.``, the run directory and its parents. Each refusal is one
line naming the path, exit 2, and the listing (with every file's sha256) is unchanged."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from helpers import error_line, planted_overrides, planted_sets

from gnnrec.cli import main
from gnnrec.common.atomic_files import (
    OUTPUT_MARKER,
    check_replaceable,
    claim_folder,
    staged_folder,
)


def listing(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its sha256 (``dir`` for folders)."""
    return {
        str(p.relative_to(folder)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.name != ".gnnrec.lock"
    }


def refused(capsys, code: int, path_text: str) -> str:
    line = error_line(capsys, code)
    assert path_text in line, line
    return line


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, planted_dir, feature_cache) -> Path:
    """A user's folder: their own files, a trained run and a foreign non-empty folder."""
    root = tmp_path_factory.mktemp("workspace")
    (root / "notes.txt").write_text("mine")
    (root / "ratings.csv").write_text("user,item,rating\nu1,i1,5\n")
    (root / "photos").mkdir()
    (root / "photos" / "cat.jpg").write_bytes(b"\xff\xd8 not really")
    args = ["train", "--run-dir", str(root / "run")]
    args += planted_sets(planted_dir, feature_cache, "train.epochs=1")
    assert main(args) == 0
    return root


def output_cases(root: Path, data: list[str]) -> list[tuple[list[str], Path]]:
    """``(command, target)`` for every output flag, each aimed at something gnnrec did not
    write (or at a run directory, which only its own artifacts may be written into); ``data``:
    the ``--set`` flags of the dataset to encode."""
    run = ["--run-dir", str(root / "run")]
    targets = [root, root / "photos", root / "run", root / "run" / "checkpoints", root.parent]
    cases = []
    for target in targets:
        cases.append((["export", *run, "--output", str(target)], target))
        cases.append((["synth", "--users", "20", "--items", "10", "--output", str(target)], target))
        cases.append(
            (
                ["synth", "--users", "20", "--items", "10", "--overwrite", "--output", str(target)],
                target,
            )
        )
        cases.append((["recommend", *run, "--output", str(target)], target))
        cases.append((["encode", *data, "--output", str(target)], target))
    for name in ("notes.txt", "ratings.csv", "run/model.pt", "run/config.toml", "photos/cat.jpg"):
        cases.append((["recommend", *run, "--output", str(root / name)], root / name))
    cases.append((["export", *run, "--output", str(root / "notes.txt")], root / "notes.txt"))
    for inner in ("new", "checkpoints/new"):  # a run's folders are its own
        cases.append((["train", "--run-dir", str(root / "run" / inner), *data], root / "run"))
    return cases


def test_no_output_flag_deletes_or_replaces_what_it_did_not_write(
    workspace, planted_dir, feature_cache, capsys
):
    data = [f for item in planted_overrides(planted_dir, feature_cache) for f in ("--set", item)]
    before = listing(workspace)
    for command, target in output_cases(workspace, data):
        refused(capsys, main(command), str(target))
        assert listing(workspace) == before, command


def test_the_current_folder_and_its_parents_are_refused(workspace, capsys, monkeypatch):
    inner = workspace / "photos"
    monkeypatch.chdir(inner)
    before = listing(workspace)
    run = ["--run-dir", str(workspace / "run")]
    for target in (".", "..", str(inner)):
        for command in (
            ["export", *run, "--output", target],
            ["synth", "--users", "20", "--items", "10", "--overwrite", "--output", target],
        ):
            refused(capsys, main(command), target)
            assert listing(workspace) == before, command


def test_an_earlier_output_of_the_same_command_is_replaced(workspace, tmp_path, capsys):
    run = ["--run-dir", str(workspace / "run")]
    out = tmp_path / "export"
    assert main(["export", *run, "--output", str(out)]) == 0
    first = listing(out)
    assert main(["export", *run, "--output", str(out)]) == 0
    assert listing(out) == first  # replaced by the same files
    # a synth output is no export, and an export with a file of the user's beside it is kept
    (out / "mine.txt").write_text("keep")
    refused(capsys, main(["export", *run, "--output", str(out)]), str(out))
    assert (out / "mine.txt").read_text() == "keep"
    table = tmp_path / "top.parquet"
    assert main(["recommend", *run, "--output", str(table)]) == 0
    assert main(["recommend", *run, "--output", str(table)]) == 0
    data = tmp_path / "synth"
    assert main(["synth", "--users", "20", "--items", "10", "--output", str(data)]) == 0
    refused(capsys, main(["export", *run, "--output", str(data)]), str(data))
    assert (
        main(["synth", "--users", "30", "--items", "10", "--overwrite", "--output", str(data)]) == 0
    )


def test_recommend_output_format_follows_the_suffix(workspace, tmp_path, capsys):
    run = ["--run-dir", str(workspace / "run")]
    line = refused(
        capsys, main(["recommend", *run, "--output", str(tmp_path / "top.json")]), "top.json"
    )
    assert ".csv or .parquet" in line
    assert not list(tmp_path.iterdir())


def test_staged_folder_refuses_foreign_content_and_keeps_it(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "data.bin").write_bytes(b"precious")
    with pytest.raises(ValueError, match="did not write"):
        with staged_folder(folder, "export"):
            pass
    assert (folder / "data.bin").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left


def test_foreign_content_that_appears_while_writing_is_kept(tmp_path):
    folder = tmp_path / "out"
    with staged_folder(folder, "export") as tmp:
        (tmp / "a.npy").write_bytes(b"1")
    with pytest.raises(ValueError, match="b.txt"):
        with staged_folder(folder, "export") as tmp:
            (tmp / "a.npy").write_bytes(b"2")
            (folder / "b.txt").write_text("written meanwhile by someone else")
    assert (folder / "a.npy").read_bytes() == b"1" and (folder / "b.txt").exists()


def test_a_failed_write_keeps_the_previous_output(tmp_path):
    folder = tmp_path / "out"
    with staged_folder(folder, "export") as tmp:
        (tmp / "a.npy").write_bytes(b"1")
    with pytest.raises(RuntimeError):
        with staged_folder(folder, "export") as tmp:
            (tmp / "a.npy").write_bytes(b"2")
            raise RuntimeError("crash")
    assert (folder / "a.npy").read_bytes() == b"1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_folders_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        with staged_folder(tmp_path / "out", "export") as tmp:
            (tmp / "a").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755


def test_a_marker_of_another_kind_or_a_broken_one_is_foreign(tmp_path):
    folder = tmp_path / "out"
    with staged_folder(folder, "graph store") as tmp:
        (tmp / "csr.npy").write_bytes(b"1")
    with pytest.raises(ValueError, match="graph store"):
        check_replaceable(folder, "export")
    (folder / OUTPUT_MARKER).write_text("{not json")
    with pytest.raises(ValueError, match="did not write"):
        check_replaceable(folder, "graph store")


def test_claimed_folders_resume_and_refuse_foreign_ones(tmp_path):
    folder = claim_folder(tmp_path / "enc", "encoding", ["shards", "features.npy"])
    (folder / "shards").mkdir()
    (folder / ".features.npy.123-abcd.tmp").write_bytes(b"a crash's leftover")
    assert claim_folder(folder, "encoding", ["shards", "features.npy"]) == folder
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="did not write"):
        claim_folder(foreign, "encoding", ["shards", "features.npy", "manifest.json"])
    assert [p.name for p in foreign.iterdir()] == ["manifest.json"]


def test_a_run_that_loses_the_race_for_a_fresh_folder_never_removes_it(
    planted_dir, feature_cache, tmp_path, monkeypatch
):
    """Another process creates the run directory between this one's look and its mkdir, then
    holds the lock: this one fails and leaves the winner's run alone."""
    from helpers import planted_config

    from gnnrec.common.run_lock import run_dir_lock
    from gnnrec.run import train_run

    run_dir = tmp_path / "run"
    mkdir = Path.mkdir

    def the_other_process_wins(self, *args, **kwargs):
        mkdir(self, *args, **kwargs)
        if self == run_dir:
            (run_dir / "winner.txt").write_text("the other run's first file")
            raise FileExistsError(self)

    monkeypatch.setattr(Path, "mkdir", the_other_process_wins)
    with run_dir_lock(run_dir) as created:
        assert not created
    monkeypatch.undo()
    with run_dir_lock(run_dir):  # the winner holds it
        with pytest.raises(ValueError, match="in use"):
            train_run(planted_config(planted_dir, feature_cache, run_dir, "train.epochs=1"))
        assert (run_dir / "winner.txt").exists()
    fresh = tmp_path / "fresh"
    with pytest.raises(ValueError):  # fails after creating its folder: removes what it made
        missing = f'data.path="{tmp_path / "missing.csv"}"'
        train_run(planted_config(planted_dir, feature_cache, fresh, missing))
    assert not fresh.exists()
