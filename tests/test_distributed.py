"""Training on Ray Train with real clusters on 127.0.0.1: data-parallel equivalence, a killed
worker, shared (not copied) data, and a job submitted through the Job API."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_planted_dataset
from helpers import (
    SHARDED,
    assert_same_model,
    entity_overrides,
    planted_config,
    trained_model,
    write_genre_tables,
)

from gnnrec.cli import main
from gnnrec.config import load_config, save_config
from gnnrec.distributed.layout import ParallelLayout
from gnnrec.distributed.ray_train import _table_file, load_table_shards
from gnnrec.run import train_run
from gnnrec.train.checkpoint import load_checkpoint

ray = pytest.importorskip("ray", reason="Ray is part of the test extras")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module", autouse=True)
def _disconnect_at_the_end():
    yield
    ray.shutdown()


def test_layout_errors_are_readable():
    with pytest.raises(ValueError, match=r"partitions \(3\) must be a multiple of every number"):
        ParallelLayout(num_workers=2, partitions=3)
    with pytest.raises(ValueError, match=r"may have \(2..3: 6 is the smallest\)"):
        ParallelLayout(num_workers=3, min_workers=2, partitions=3)
    with pytest.raises(ValueError, match=r"min_workers must be in \[0, num_workers = 2\]"):
        ParallelLayout(num_workers=2, min_workers=3)
    elastic = ParallelLayout(num_workers=4, min_workers=2)
    assert (elastic.num_partitions, list(elastic.worker_counts)) == (12, [2, 3, 4])
    with pytest.raises(ValueError, match="gpus_per_worker must be 0 or 1"):
        ParallelLayout(num_workers=2, gpus_per_worker=2)
    with pytest.raises(ValueError, match="'nccl' needs GPUs"):
        ParallelLayout(num_workers=2, backend="nccl")
    with pytest.raises(ValueError, match=r"parallel: .*num_workers must be >= 0"):
        load_config(None, ["parallel.num_workers=-1"])
    layout = ParallelLayout(num_workers=4, gpus_per_worker=1)
    assert (layout.num_partitions, layout.process_group_backend) == (4, "nccl")
    assert list(layout.shard(1, 4).parts) == [1]


def test_workers_that_cannot_fit_this_machine_are_refused_before_starting():
    from gnnrec.distributed.ray_train import _check_fits_this_machine

    layout = ParallelLayout(num_workers=3)
    with pytest.raises(ValueError, match=r"3 workers x 1.0 CPU need 3 CPUs; this machine has 2"):
        _check_fits_this_machine(layout, {"CPU": 1.0}, {"CPU": 2.0})
    with pytest.raises(ValueError, match="parallel.gpus_per_worker"):
        _check_fits_this_machine(layout, {"CPU": 0.5, "GPU": 1}, {"CPU": 2.0})
    _check_fits_this_machine(layout, {"CPU": 0.5}, {"CPU": 2.0})  # 1.5 of 2: fits
    elastic = ParallelLayout(num_workers=3, min_workers=2)
    _check_fits_this_machine(elastic, {"CPU": 1.0}, {"CPU": 2.0})  # starts with 2


def test_a_checkpoint_missing_a_worker_s_table_shard_is_refused(tmp_path):
    from gnnrec.train.checkpoint import save_checkpoint

    shard = {"weight": torch.zeros(3, 2), "state": torch.zeros(3), "best": torch.zeros(3, 2)}
    for rank in (0, 2):  # of 3: rank 1's file is missing
        save_checkpoint(
            {"rank": rank, "world": 3, "tables": {"embedding": shard}},
            tmp_path / _table_file(rank),
        )
    with pytest.raises(ValueError, match=r"incomplete checkpoint \(table shards of ranks \[0, 2\]"):
        load_table_shards(tmp_path)
    assert load_table_shards(tmp_path / "empty") == []  # no sharded tables: nothing to load


@pytest.mark.parametrize(
    ("mode", "alone_partitions", "tolerance"),
    [
        (["train.mode=full"], 1, dict(rtol=1e-4, atol=1e-5)),
        (["train.mode=sampled", "train.fanouts=[4, 3]"], 2, dict(rtol=1e-5, atol=1e-6)),
    ],
    ids=["full-graph", "sampled"],
)
@pytest.mark.slow  # a Ray cluster on localhost
def test_two_workers_with_half_batches_match_one_process_with_whole_ones(
    planted_dir, feature_cache, tmp_path, mode, alone_partitions, tolerance
):
    """Same seeds, 18 Adam steps (3 epochs of 6 batches of 64): 2 workers computing 32 examples
    each reach the parameters one process reaches with the 64. In full-graph mode the one
    process takes each batch in one piece (equal up to float32 summation order: allowed 1e-5
    absolute plus 1e-4 relative); in sampled mode, where each slice samples its own subgraph, it
    computes the same two slices (bit-identical here; allowed 1e-6 plus 1e-5 relative)."""
    common = [*mode, "train.epochs=3"]
    alone = train_run(
        planted_config(
            planted_dir,
            feature_cache,
            tmp_path / "one",
            *common,
            f"parallel.partitions={alone_partitions}",
        )
    )
    both = train_run(
        planted_config(
            planted_dir, feature_cache, tmp_path / "two", *common, "parallel.num_workers=2"
        )
    )
    assert_same_model(trained_model(tmp_path / "one"), trained_model(tmp_path / "two"), **tolerance)
    assert both["recall@20"] == pytest.approx(alone["recall@20"], abs=0.03)
    workers = json.loads((tmp_path / "two" / "workers.json").read_text())
    assert [w["rank"] for w in workers] == [0, 1]
    assert all(w["node_ip"] == "127.0.0.1" for w in workers)  # the private instance
    assert all(w["steps"] == 18 and w["allreduce_bytes"] > 0 for w in workers)
    history = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").open()]
    assert [row["examples"] for row in history] == [330] * 3  # every example, once per epoch


def _one_process_and_two_workers(planted_dir, feature_cache, tmp_path, common: list[str]):
    """The metrics of one process over 2 batch slices (``one``) and of 2 workers (``two``)."""
    runs = []
    for name, layout in (("one", "parallel.partitions=2"), ("two", "parallel.num_workers=2")):
        config = planted_config(planted_dir, feature_cache, tmp_path / name, *common, layout)
        runs.append(train_run(config))
    return runs


@pytest.mark.slow  # a Ray cluster on localhost
def test_two_workers_with_sharded_id_tables_match_one_process(planted_dir, feature_cache, tmp_path):
    """Row-wise Adagrad on ID tables sharded over 2 workers (rows r % 2) reaches the model one
    process reaches on the same two slices of each batch, each worker holding half the table
    and its state, the tables' traffic beside DDP's all-reduce of the dense parameters only."""
    common = ["train.mode=sampled", "train.fanouts=[4, 3]", "train.epochs=2"]
    common += ["train.id_optimizer=rowwise_adagrad", "model.text_features=true"]
    alone, both = _one_process_and_two_workers(planted_dir, feature_cache, tmp_path, common)
    assert_same_model(
        trained_model(tmp_path / "one"), trained_model(tmp_path / "two"), rtol=1e-5, atol=1e-6
    )
    assert both["recall@20"] == pytest.approx(alone["recall@20"], abs=0.03)
    workers = json.loads((tmp_path / "two" / "workers.json").read_text())
    for w in workers:
        assert 0.45 < w["table_bytes"] / w["table_total_bytes"] <= 0.55
        assert w["table_bytes_sent"] > 0 and w["steps"] == 12
    model = trained_model(tmp_path / "two")
    dense = sum(v.numel() * 4 for k, v in model.items() if k != "embedding.weight")
    assert workers[0]["allreduce_bytes"] <= 12 * dense  # no table in DDP's all-reduce
    # the checkpoint: rank 0's state without the table, and each worker's own rows in its file
    last = max(p for p in (tmp_path / "two" / "ray" / "train").glob("checkpoint_*") if p.is_dir())
    assert sorted(p.name for p in last.iterdir()) == ["state.pt", *map(_table_file, (0, 1))]
    assert not any("embedding" in key for key in load_checkpoint(last / "state.pt")["model"])
    rows, dim = model["embedding.weight"].shape
    for rank, shard in enumerate(load_table_shards(last)):
        saved = shard["tables"]["embedding"]
        assert saved["weight"].shape == saved["best"].shape == (len(range(rank, rows, 2)), dim)


@pytest.mark.slow  # a Ray cluster on localhost
def test_two_workers_train_typed_weighted_relations_as_one_process(
    planted_dir, feature_cache, tmp_path
):
    """Typed relations over rating-weighted edges and a genre entity type with sharded ID
    tables (the genres' rows sharded with the others): the workers read the weights, the
    relations and the schema from the shared graph and reach the one-process model."""
    genres = entity_overrides(write_genre_tables(planted_dir, tmp_path / "genres"))
    common = ["train.mode=sampled", "train.fanouts=[4, 3]", "train.epochs=2", *SHARDED, *genres]
    common += ["model.relations=typed", "model.conv_weights=true", "data.edge_weight=rating"]
    common += ["train.relation_fanouts={rates=[3, 2], genre_of=[2, 1]}"]
    alone, both = _one_process_and_two_workers(planted_dir, feature_cache, tmp_path, common)
    model = trained_model(tmp_path / "two")
    assert model["convs.0.weight"].shape[0] == 6  # a weight per relation (has_genre, genre_of)
    assert model["embedding.weight"].shape[0] == 48 + 60 + 4  # users, items, genres
    assert_same_model(trained_model(tmp_path / "one"), model, rtol=1e-5, atol=1e-6)
    assert both["recall@20"] == pytest.approx(alone["recall@20"], abs=0.03)


@pytest.mark.slow  # a Ray cluster on localhost
def test_sharded_tables_resume_on_another_number_of_workers(planted_dir, feature_cache, tmp_path):
    """A run of 2 workers with sharded tables (6 batch slices), stopped after epoch 1, resumes on
    3 workers and on 1 (each cuts the gathered tables into its own shards) and ends with the
    model of an uninterrupted 2-worker run."""
    common = ["train.mode=sampled", "train.fanouts=[4, 3]", *SHARDED, "parallel.partitions=6"]
    common.append("parallel.cpus_per_worker=0.5")  # 3 workers on this machine's 2 CPUs

    def run(name: str, workers: int, epochs: int) -> dict:
        config = planted_config(
            planted_dir,
            feature_cache,
            tmp_path / name,
            *common,
            f"parallel.num_workers={workers}",
            f"train.epochs={epochs}",
        )
        return train_run(config)

    run("straight", 2, 2)
    for name, workers in (("to3", 3), ("to1", 1)):
        run(name, 2, 1)
        resumed = run(name, workers, 2)
        assert resumed["epochs_run"] == 2
        ranks = json.loads((tmp_path / name / "workers.json").read_text())
        assert len(ranks) == workers and all(w["start_epoch"] == 1 for w in ranks)
        assert_same_model(
            trained_model(tmp_path / "straight"),
            trained_model(tmp_path / name),
            rtol=1e-5,
            atol=1e-6,
        )


# A larger planted graph (IDs only, no text to encode), so that an epoch lasts long enough to
# kill a worker in the middle of one, and the shared arrays dwarf measurement noise.
BIG = dict(num_users=6000, items_per_genre=150, per_user=40)


@pytest.fixture(scope="module")
def big_dir(tmp_path_factory) -> Path:
    return write_planted_dataset(tmp_path_factory.mktemp("big"), **BIG)


def _big_config_file(big_dir: Path, cache: Path, run_dir: Path, *extra: str) -> Path:
    config = planted_config(
        big_dir,
        cache,
        run_dir,
        "model.text_features=false",
        "train.epochs=3",
        "train.batch_size=1024",
        "train.lr=0.01",
        "parallel.num_workers=2",
        *extra,
    )
    save_config(config, run_dir.with_suffix(".toml"))
    return run_dir.with_suffix(".toml")


def _gnnrec(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    return subprocess.Popen([str(BIN / "gnnrec"), *args], env=env, **kwargs)


@pytest.fixture(scope="module")
def uninterrupted(big_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    config_file = _big_config_file(big_dir, tmp_path_factory.mktemp("cache"), run_dir)
    assert _gnnrec("train", "--config", str(config_file)).wait(timeout=600) == 0
    return run_dir


@pytest.mark.slow  # a Ray cluster on localhost
def test_workers_map_the_shared_graph_instead_of_copying_it(uninterrupted):
    """Each worker's resident memory grows by the shared arrays when it reads every page of
    them, but its private memory does not: the pages belong to the object store, one copy for
    both workers."""
    workers = json.loads((uninterrupted / "workers.json").read_text())
    assert len(workers) == 2
    for w in workers:
        shared = w["shared_bytes"]
        before, after = w["memory_before_data"], w["memory_after_data"]
        assert shared > 4_000_000
        assert after["rss"] - before["rss"] > 0.8 * shared
        assert after["uss"] - before["uss"] < 0.1 * shared
    private = sum(w["memory_after_data"]["uss"] - w["memory_before_data"]["uss"] for w in workers)
    assert private < 0.2 * workers[0]["shared_bytes"]


@pytest.fixture(scope="module")
def uninterrupted_sharded(big_dir, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted_sharded") / "run"
    config_file = _big_config_file(big_dir, tmp_path_factory.mktemp("cache"), run_dir, *SHARDED)
    assert _gnnrec("train", "--config", str(config_file)).wait(timeout=600) == 0
    return run_dir


@pytest.mark.slow  # a Ray cluster on localhost
def test_a_killed_worker_restarts_from_the_last_checkpoint(big_dir, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    _kill_and_resume(_big_config_file(big_dir, tmp_path / "cache", run_dir), run_dir, uninterrupted)


@pytest.mark.slow  # a Ray cluster on localhost
def test_a_killed_worker_with_sharded_tables_resumes_to_the_same_model(
    big_dir, uninterrupted_sharded, tmp_path
):
    """Each worker's rows of the tables are saved with each checkpoint and cut again on
    resume: a worker killed mid-epoch costs nothing of the result."""
    run_dir = tmp_path / "run"
    config_file = _big_config_file(big_dir, tmp_path / "cache", run_dir, *SHARDED)
    _kill_and_resume(config_file, run_dir, uninterrupted_sharded)


def _kill_and_resume(config_file: Path, run_dir: Path, uninterrupted: Path) -> None:
    """Trains ``config_file``, SIGKILLs rank 1 once the first checkpoint is registered, and
    checks the run resumes to ``uninterrupted``'s model and metrics."""
    process = _gnnrec("train", "--config", str(config_file), stdout=subprocess.DEVNULL)
    # Kill once Ray Train has registered the epoch-1 checkpoint (its snapshot lists it).
    snapshot, deadline = (
        run_dir / "ray" / "train" / "checkpoint_manager_snapshot.json",
        time.time() + 300,
    )
    while not (snapshot.exists() and json.loads(snapshot.read_text())["checkpoint_results"]):
        assert process.poll() is None and time.time() < deadline, "no checkpoint registered"
        time.sleep(0.05)
    victim = json.loads((run_dir / "workers.json").read_text())[1]["pid"]
    os.kill(victim, signal.SIGKILL)  # rank 1, during epoch 2 (an epoch lasts seconds)
    assert process.wait(timeout=600) == 0
    workers = json.loads((run_dir / "workers.json").read_text())
    assert victim not in [w["pid"] for w in workers]  # a new worker group finished the run
    assert all(1 <= w["start_epoch"] < 3 for w in workers)  # resumed, not restarted
    assert_same_model(trained_model(uninterrupted), trained_model(run_dir), rtol=1e-5, atol=1e-6)
    straight = json.loads((uninterrupted / "metrics.json").read_text())
    resumed = json.loads((run_dir / "metrics.json").read_text())
    assert resumed["recall@20"] == pytest.approx(straight["recall@20"], abs=1e-6)
    checkpoints = sorted((run_dir / "ray" / "train").glob("checkpoint_*/state.pt"))
    assert checkpoints  # every kept checkpoint is whole and loads safely
    for path in checkpoints:
        assert torch.load(path, weights_only=True)["epoch"] >= 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory) -> str:
    """A Ray head with its job server, every service on 127.0.0.1 and on ports of its own (a
    private instance of an earlier test may hold Ray's default ones); the job server's URL."""
    port, dashboard = _free_port(), _free_port()
    own_ports = [
        f"--{flag}={_free_port()}"
        for flag in (
            "dashboard-agent-listen-port",
            "dashboard-agent-grpc-port",
            "runtime-env-agent-port",
            "metrics-export-port",
        )
    ]
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    }
    start = [
        str(BIN / "ray"),
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        "--include-dashboard=true",
        "--num-cpus=4",
        "--disable-usage-stats",
        *own_ports,
    ]
    subprocess.run(start, env=env, check=True, capture_output=True)
    yield f"http://127.0.0.1:{dashboard}"
    ray.shutdown()
    subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True)


@pytest.mark.slow  # a Ray cluster on localhost
def test_a_job_submitted_through_the_job_api_trains_with_two_workers(
    ray_head, planted_dir, feature_cache, tmp_path, capsys
):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    run_dir = tmp_path / "run"
    config = planted_config(planted_dir, feature_cache, run_dir, "train.epochs=2")
    save_config(config, job_dir / "config.toml")
    command = ["train", "--config", "config.toml", "--num-workers", "2"]
    code = main(["submit", "--address", ray_head, "--working-dir", str(job_dir), "--", *command])
    logs = capsys.readouterr().out
    assert code == 0, logs
    assert "SUCCEEDED" in logs and "Recall@20" in logs
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and metrics["recall@20"] > 0
    workers = json.loads((run_dir / "workers.json").read_text())
    assert len({w["pid"] for w in workers}) == 2


def _listening(root: int) -> set[tuple[str, str]]:
    """``(process name, ip)`` of every listening TCP socket of ``root`` and its descendants."""
    import psutil

    try:
        tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for process in tree:
        try:
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((process.name(), conn.laddr.ip))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
    return (mapped or address).is_loopback


@pytest.mark.slow  # a Ray cluster on localhost
def test_every_socket_of_a_two_worker_run_listens_on_the_loopback(
    planted_dir, feature_cache, tmp_path
):
    """Ray's services, the workers and the DDP rendezvous (torch's TCPStore, gloo): every
    listener of every process the run starts, sampled while it trains."""
    config = planted_config(planted_dir, feature_cache, tmp_path / "run", "train.epochs=3")
    save_config(config, tmp_path / "run.toml")
    command = [str(BIN / "gnnrec"), "train", "--config", str(tmp_path / "run.toml")]
    process = subprocess.Popen([*command, "--num-workers", "2"], stderr=subprocess.DEVNULL)
    seen: set[tuple[str, str]] = set()
    while process.poll() is None:
        seen |= _listening(process.pid)
        time.sleep(0.2)
    assert process.returncode == 0
    assert any("RayTrainWorker" in name for name, _ in seen)  # the workers were watched
    exposed = {(name, ip) for name, ip in seen if not _loopback(ip)}
    assert not exposed, exposed


def test_a_worker_s_own_error_reaches_the_user_unwrapped():
    """Ray Train wraps a worker's exception (with its traceback) in a WorkerGroupError; the CLI
    shows the worker's own message, in one line."""
    from gnnrec.distributed.ray_train import worker_error

    class Wrapped(Exception):  # what Ray's RayTaskError looks like: the original in .cause
        def __init__(self, cause):
            super().__init__("Traceback (most recent call last): ...")
            self.cause = cause

    class GroupError(Exception):
        worker_failures = {1: Wrapped(ValueError("training diverged: epoch 2"))}

    unwrapped = worker_error(GroupError("Training failed due to worker errors: ..."))
    assert isinstance(unwrapped, ValueError)
    assert str(unwrapped) == "worker 1: training diverged: epoch 2"
    other = RuntimeError("the controller died")
    assert worker_error(other) is other
