"""Sharded encoding on a real local Ray cluster with 2 workers: complete, resumable after a
kill, byte-identical, and loud about corrupted or missing shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sharded_encode import texts_for_test

from gnnrec.data import DataError
from gnnrec.encoders import EncoderConfig
from gnnrec.encoders.sharded import assemble, shard_path

pytestmark = pytest.mark.slow  # Ray Data actor pools and a killed run

pytest.importorskip("ray", reason="ray is not installed (make test installs it)")
SCRIPT = Path(__file__).with_name("sharded_encode.py")
COUNT, SHARD, WORKERS = 240, 8, 2


def _run(folder: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(folder), str(COUNT), str(SHARD), str(WORKERS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def _finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-4000:]
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("straight")
    assert f"DONE {COUNT} 384" in _finish(_run(folder))
    return folder


def test_encoding_writes_every_node_once_in_node_order(uninterrupted):
    features = np.load(uninterrupted / "features.npy", mmap_mode="r")
    assert features.shape == (COUNT, 384) and features.dtype == np.float16
    ids = np.concatenate(
        [np.load(p)["node_ids"] for p in sorted((uninterrupted / "shards").glob("*.npz"))]
    )
    assert np.array_equal(ids, np.arange(COUNT))
    manifest = json.loads((uninterrupted / "manifest.json").read_text())
    assert manifest["dim"] == 384 and manifest["num_texts"] == COUNT
    assert manifest["truncated"] == 1 and len(manifest["text_hashes"]) == COUNT // SHARD
    norms = np.linalg.norm(features.astype(np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=2e-3)  # the empty text too


def test_killed_run_resumes_byte_identical_without_redoing_shards(uninterrupted, tmp_path):
    process = _run(tmp_path)
    records = tmp_path / "shards"
    deadline = time.time() + 300
    while len(list(records.glob("*.json"))) < 6 and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = {
        p: p.stat().st_mtime_ns for p in records.glob("*.npz") if p.with_suffix(".json").exists()
    }
    assert 6 <= len(finished) < COUNT // SHARD, "the kill came too late to test a resume"
    assert not (tmp_path / "features.npy").exists()
    _finish(_run(tmp_path))
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was encoded twice"
    assert (tmp_path / "features.npy").read_bytes() == (uninterrupted / "features.npy").read_bytes()


def test_corrupted_and_missing_shards_are_reported(uninterrupted, tmp_path):
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(uninterrupted, folder)
    (folder / "features.npy").unlink()
    texts = texts_for_test(COUNT)
    config = EncoderConfig(num_workers=WORKERS, shard_size=SHARD, batch_size=8)
    victim = shard_path(folder, 5)
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shard-00005.npz: shard file is corrupted"):
        assemble(folder, texts, config)
    victim.unlink()
    with pytest.raises(DataError, match=r"shard-00005.npz: shard file is missing"):
        assemble(folder, texts, config)
    victim.with_suffix(".json").unlink()
    with pytest.raises(DataError, match=r"1 shard\(s\) are not encoded \(first: shard-00005"):
        assemble(folder, texts, config)
