"""Two Ray nodes on this machine (``ray.cluster_utils.Cluster``, every service on 127.0.0.1):
training with sharded ID tables spreads over both nodes, and when one whole node is removed
mid-epoch, the elastic run (2 workers, at least 1) finishes on the node that is left from the
last checkpoint, re-sharding the tables, with the model of an uninterrupted run."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from helpers import SHARDED, assert_same_model, planted_config, trained_model

from gnnrec.common.ray_cluster import SINGLE_NODE_SWITCH
from gnnrec.run import train_run

ray = pytest.importorskip("ray", reason="Ray is part of the test extras")
cluster_utils = pytest.importorskip("ray.cluster_utils")

LOOPBACK = dict(num_cpus=1, node_ip_address="127.0.0.1")


@pytest.fixture
def two_nodes(monkeypatch):
    """A head node and one worker node of 1 CPU each: one training worker fits on each."""
    # every address the loopback, not the LAN: for Ray's child processes and for this one
    # (whose copy of the switch was read when Ray was imported)
    monkeypatch.setenv(SINGLE_NODE_SWITCH, "0")
    monkeypatch.setattr("ray._private.ray_constants.ENABLE_RAY_CLUSTER", False)
    ray.shutdown()  # a private instance of an earlier test
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args=dict(include_dashboard=False, **LOOPBACK)
    )
    worker_node = cluster.add_node(**LOOPBACK)
    yield cluster, worker_node
    ray.shutdown()
    cluster.shutdown()


def _remove_after_first_checkpoint(cluster, node, run_dir: Path, seen: dict) -> None:
    """Waits for Ray Train to register the epoch-1 checkpoint, notes the nodes the workers run
    on, and removes ``node`` with every process on it (the run is then in epoch 2)."""
    snapshot, deadline = run_dir / "ray" / "train" / "checkpoint_manager_snapshot.json", 300
    began = time.time()
    while not (snapshot.exists() and json.loads(snapshot.read_text())["checkpoint_results"]):
        if time.time() - began > deadline:
            return
        time.sleep(0.05)
    seen["workers"] = json.loads((run_dir / "workers.json").read_text())
    cluster.remove_node(node)
    seen["removed"] = node.node_id


@pytest.mark.slow  # a two-node Ray cluster on localhost
def test_losing_a_whole_node_mid_epoch_finishes_on_the_remaining_one(
    two_nodes, planted_dir, feature_cache, tmp_path
):
    cluster, worker_node = two_nodes
    common = ["train.mode=sampled", "train.fanouts=[4, 3]", "train.epochs=3", *SHARDED]
    common += ["train.batch_size=16", "model.text_features=false"]  # epochs of ~20 steps
    straight = train_run(
        planted_config(
            planted_dir, feature_cache, tmp_path / "one", *common, "parallel.partitions=2"
        )
    )
    run_dir = tmp_path / "elastic"
    config = planted_config(
        planted_dir,
        feature_cache,
        run_dir,
        *common,
        "parallel.num_workers=2",
        "parallel.min_workers=1",
        f"parallel.address={cluster.address}",
    )
    seen: dict = {}
    remover = threading.Thread(
        target=_remove_after_first_checkpoint, args=(cluster, worker_node, run_dir, seen)
    )
    remover.start()
    resumed = train_run(config)
    remover.join()
    assert seen.get("removed") == worker_node.node_id, "the node was not removed during the run"
    assert len({w["node_id"] for w in seen["workers"]}) == 2  # one worker on each node
    after = json.loads((run_dir / "workers.json").read_text())
    assert [w["node_id"] for w in after] == [cluster.head_node.node_id]  # one worker left
    assert after[0]["start_epoch"] in (1, 2)  # resumed from a checkpoint, not from scratch
    assert resumed["epochs_run"] == 3
    assert_same_model(trained_model(tmp_path / "one"), trained_model(run_dir), rtol=1e-5, atol=1e-6)
    assert resumed["recall@20"] == pytest.approx(straight["recall@20"], abs=0.03)
