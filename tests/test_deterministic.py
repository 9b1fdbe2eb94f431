"""``train.deterministic = true``: bit-identical weights on 1, 2 and 3 threads (each run its own
process, ``OMP_NUM_THREADS`` set before torch starts), on ml-latest-small with ID tables, where
the scatter-adds of the tables' gradients run in parallel (without the setting, two runs in one
process on 2 threads differed by 3.5e-7 here); an update of such a run likewise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnnrec.train.checkpoint import load_checkpoint
from gnnrec.train.determinism import deterministic_algorithms


def gnnrec(args: list[str], threads: int) -> None:
    command = [sys.executable, "-m", "gnnrec", "--quiet", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=600)


def train(run_dir: Path, threads: int) -> dict[str, torch.Tensor]:
    command = ["train", "--run-dir", str(run_dir)]
    for item in (
        "train.deterministic=true",
        "train.epochs=2",
        "model.text_features=false",
        "train.progress=false",
    ):
        command += ["--set", item]
    gnnrec(command, threads)
    return load_checkpoint(run_dir / "model.pt")["model"]


def assert_identical(runs: list[dict[str, torch.Tensor]]) -> None:
    for other in runs[1:]:
        assert other.keys() == runs[0].keys()
        for key, tensor in runs[0].items():
            assert torch.equal(tensor, other[key]), key


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical_on_any_thread_count(tmp_path):
    runs = [train(tmp_path / f"threads-{n}", n) for n in (1, 2, 3)]
    assert_identical(runs)
    # an update of such a run too: the same version's weights on 1 and 2 threads
    new = tmp_path / "new.csv"
    new.write_text("user_id,item_id\n1,2\nnew-user,1\nnew-user,260\n")
    updated = []
    for n in (1, 2):
        run_dir = tmp_path / f"threads-{n}"
        gnnrec(["update", "--run-dir", str(run_dir), "--data", str(new)], threads=n)
        updated.append(load_checkpoint(run_dir / "versions" / "0001" / "model.pt")["model"])
    assert_identical(updated)


def test_the_setting_is_scoped_to_the_run():
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    assert torch.are_deterministic_algorithms_enabled() == before
    with deterministic_algorithms(False):
        assert torch.are_deterministic_algorithms_enabled() == before
