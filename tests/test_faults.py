"""Faults say what happened: a full disk is "no space left on device" naming the path the user
gave (not torch's or numpy's words, not a temporary name) and leaves no folder it made; a
checkpoint that holds code is refused without torch's advice to unpickle it; a resumed run says
from which epoch. The disk fills for real in a small tmpfs where this machine can mount one, and
through an injected writer failure everywhere."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import planted_overrides, planted_sets

from gnnrec.cli import main
from gnnrec.common.atomic_files import atomic_path, staged_folder
from gnnrec.train.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root and a kernel that lets this process mount one), else skipped."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:100]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)  # lazy: open files too


def assert_disk_full(err: BaseException, path: Path) -> None:
    assert isinstance(err, OSError) and err.errno == errno.ENOSPC, repr(err)
    assert err.filename == str(path) and "no space left on device" in str(err)


def test_a_full_disk_is_named_for_torch_and_numpy_writers(small_disk):
    target = small_disk / "run" / "checkpoints" / "last.pt"
    with pytest.raises(OSError) as err:
        save_checkpoint({"w": torch.zeros(1 << 17)}, target)  # 512 KiB
    assert_disk_full(err.value, target)
    with pytest.raises(OSError) as err:
        with atomic_path(small_disk / "features.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, np.zeros(1 << 17, dtype=np.float32))
    assert_disk_full(err.value, small_disk / "features.npy")
    with pytest.raises(OSError) as err:
        with staged_folder(small_disk / "export", "export") as tmp:
            np.save(tmp / "user_embeddings.npy", np.zeros(1 << 17, dtype=np.float32))
    assert_disk_full(err.value, small_disk / "export")
    assert list(small_disk.iterdir()) == []  # no folder made for them, no temporary


def test_the_cli_says_no_space_left(small_disk, tmp_path, planted_dir, feature_cache, capsys):
    run = tmp_path / "run"
    args = ["train", "--run-dir", str(run)]
    args += planted_sets(planted_dir, feature_cache, "train.epochs=1")
    assert main(args) == 0
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (250 << 10))
    out = small_disk / "export"
    assert main(["export", "--run-dir", str(run), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"gnnrec export: error: {out}: no space left on device" in err, err
    assert "Traceback" not in err and ".tmp" not in err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0"),
        OSError("19200 requested and 14304 written"),
        OSError(errno.ENOSPC, "No space left on device"),
    ],
    ids=["torch", "numpy", "errno"],
)
def test_an_injected_full_disk_is_named_everywhere(tmp_path, monkeypatch, failure):
    class Full:
        f_bavail, f_frsize = 0, 4096

    def failing_save(*args, **kwargs):
        raise failure

    monkeypatch.setattr(torch, "save", failing_save)
    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    target = tmp_path / "run" / "checkpoints" / "last.pt"
    with pytest.raises(OSError) as err:
        save_checkpoint({"w": torch.zeros(3)}, target)
    assert_disk_full(err.value, target)
    assert list(tmp_path.iterdir()) == []


def test_other_errors_name_the_target_not_the_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    with pytest.raises(PermissionError) as err:
        with atomic_path(target) as tmp:
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp))
    assert err.value.filename == str(target)
    with pytest.raises(RuntimeError, match="not a disk"):  # a torch error with room left
        with atomic_path(target):
            raise RuntimeError("[enforce fail at inline_container.cc:1] not a disk problem")


class Payload:
    """Pickled into a checkpoint: loading it would run code."""


def test_a_checkpoint_holding_code_gets_no_advice_to_unpickle_it(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": Payload()}, path)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "weights_only" not in str(err.value)
    assert "Python objects besides tensors" in str(err.value)


def test_a_resumed_run_says_from_which_epoch(tmp_path, planted_dir, feature_cache, caplog):
    run = tmp_path / "run"
    base = ["train", "--run-dir", str(run)]
    for item in planted_overrides(planted_dir, feature_cache):
        base += ["--set", item]
    assert main([*base, "--set", "train.epochs=1"]) == 0
    with caplog.at_level("INFO", logger="gnnrec"):
        assert main([*base, "--set", "train.epochs=2"]) == 0
    assert "resuming from epoch 2 of 2 (1 done)" in caplog.text
