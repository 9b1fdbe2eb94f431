"""Clusters answer or fail in bounded time: an address where nothing listens, or a job server
address without its scheme, is an error naming the address within seconds (Ray alone retries
for minutes); resuming on another number of workers gets advice that is itself accepted."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from helpers import error_line, planted_config, planted_overrides

from gnnrec.cli import main
from gnnrec.common.ray_cluster import check_reachable
from gnnrec.config import save_config
from gnnrec.run_checks import check_resumable


def silent_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_on_an_address_where_nothing_listens_fails_in_seconds(
    planted_dir, feature_cache, tmp_path, capsys
):
    address = f"127.0.0.1:{silent_port()}"
    args = ["train", "--run-dir", str(tmp_path / "run"), "--num-workers", "1"]
    args += ["--address", address]
    for item in [*planted_overrides(planted_dir, feature_cache), "train.epochs=1"]:
        args += ["--set", item]
    began = time.monotonic()
    line = error_line(capsys, main(args))
    assert f"nothing answers at {address}" in line and "ray start --head" in line
    assert time.monotonic() - began < 120  # (Ray alone: over 10 minutes)
    assert not (tmp_path / "run").exists()  # the folder it made is gone


def test_submit_wants_a_scheme_and_an_answer(tmp_path, capsys):
    port = silent_port()
    line = error_line(capsys, main(["submit", "--address", f"127.0.0.1:{port}", "--", "demo"]))
    assert f"--address 127.0.0.1:{port}: a Ray job server is an http://" in line
    assert f"http://127.0.0.1:{port}" in line
    line = error_line(
        capsys, main(["submit", "--address", f"http://127.0.0.1:{port}", "--", "demo"])
    )
    assert f"nothing answers at http://127.0.0.1:{port}" in line


@pytest.mark.parametrize("address", ["127.0.0.1", "http://", "ray://head", "host:notaport"])
def test_an_address_without_host_and_port_is_named(address):
    with pytest.raises(ValueError, match="names no host and port"):
        check_reachable(address)


def test_resuming_on_another_number_of_workers_gets_advice_that_works(
    planted_dir, feature_cache, tmp_path
):
    """Trained on 2 workers (2 slices a batch): 3 workers are refused with advice naming
    partitions = 2 and the worker counts that divide it; following it passes the check."""
    run_dir = tmp_path / "run"
    (run_dir / "ray").mkdir(parents=True)
    trained = planted_config(planted_dir, feature_cache, run_dir, "parallel.num_workers=2")
    save_config(trained, run_dir / "config.toml")
    three = planted_config(planted_dir, feature_cache, run_dir, "parallel.num_workers=3")
    with pytest.raises(ValueError) as err:
        check_resumable(three, run_dir)
    assert "--set parallel.partitions=2" in str(err.value) and "(1, 2)" in str(err.value)
    for workers in (1, 2):
        advised = planted_config(
            planted_dir,
            feature_cache,
            run_dir,
            f"parallel.num_workers={workers}",
            "parallel.partitions=2",
        )
        check_resumable(advised, Path(run_dir))  # accepted


@pytest.mark.slow  # a private Ray instance in this process
def test_a_process_connected_to_ray_refuses_another_cluster():
    """Ray keeps its first connection: asking for another address afterwards would train on the
    wrong cluster without a word."""
    import ray

    from gnnrec.common.ray_cluster import connect

    started_here = not ray.is_initialized()
    connect()
    with socket.socket() as other:  # something that answers, which is not this cluster
        other.bind(("127.0.0.1", 0))
        other.listen()
        address = f"127.0.0.1:{other.getsockname()[1]}"
        with pytest.raises(ValueError, match="already connected to the Ray cluster at"):
            connect(address)
    connect(ray.get_runtime_context().gcs_address)  # the same cluster: fine
    if started_here:
        ray.shutdown()
