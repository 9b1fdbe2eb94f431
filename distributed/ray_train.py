"""Training on Ray Train.

``TorchTrainer`` starts ``num_workers`` processes; each builds the one
:class:`~gnnrec.train.trainer.Trainer` and computes its slices of every global batch (see
:mod:`gnnrec.train.data_shard`), with gradients averaged by DDP (gloo on CPUs, nccl on GPUs).
The graph, features and interactions are put once into Ray's object store and mapped read-only
by every worker of a node (:mod:`gnnrec.distributed.shared_data`). Every epoch, rank 0 writes a
checkpoint (model, optimizer, best weights, history, data cursor and seed) and each worker its
own rows of the sharded ID tables, which Ray Train persists as one folder; when a worker dies,
``FailureConfig`` restarts the worker group, which resumes from that checkpoint (on any number
of workers), so the run ends as if nothing had happened. A rerun of the same ``run_dir``
resumes the same way.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from gnnrec.common.atomic_files import read_json, write_json_atomic
from gnnrec.common.ray_cluster import connect
from gnnrec.distributed.layout import ParallelLayout
from gnnrec.distributed.memory import process_memory
from gnnrec.distributed.shared_data import share, touch_pages, unshare
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.train.callbacks import Callback
from gnnrec.train.checkpoint import TABLE_SHARDS, load_checkpoint, save_checkpoint
from gnnrec.train.config import TrainConfig
from gnnrec.train.determinism import deterministic_algorithms
from gnnrec.train.sharded_table import rows_of_rank
from gnnrec.train.trainer import Trainer
from gnnrec.train.training_data import TrainingData

STATE_FILE = "state.pt"
WORKERS_FILE = "workers.json"


@dataclass
class FitResult:
    """The best validated weights, the per-epoch history, the best epoch, and per-worker
    facts (rank, host, pid, memory, all-reduce traffic)."""

    state: dict[str, torch.Tensor]
    history: list[dict]
    best_epoch: int
    workers: list[dict]


def _table_file(rank: int) -> str:
    return f"tables-{rank:05d}.pt"


def load_table_shards(folder: Path) -> list[dict]:
    """Every rank's table shard in a checkpoint ``folder`` (memory-mapped), by rank; a missing
    one is a ``ValueError`` that names the folder."""
    shards = [load_checkpoint(path, mmap=True) for path in sorted(folder.glob("tables-*.pt"))]
    world = shards[0]["world"] if shards else 0
    if [shard["rank"] for shard in shards] != list(range(world)):
        raise ValueError(
            f"{folder}: incomplete checkpoint (table shards of ranks "
            f"{[shard['rank'] for shard in shards]}, of {world} ranks)"
        )
    return shards


class RayCheckpoints:
    """The trainer's checkpoint store inside a Ray Train worker: every rank reports each epoch
    (a barrier), rank 0 with ``state.pt`` attached and every rank with its own table shard
    (``tables-<rank>.pt``, when the ID tables are sharded); Ray merges them into one checkpoint
    folder under ``storage_path``, registered once every rank has reported."""

    def __init__(self, rank: int):
        self.rank = rank

    def load(self) -> dict[str, Any] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder) / STATE_FILE)
            shards = load_table_shards(Path(folder))
        return {**state, TABLE_SHARDS: shards} if shards else state

    def save(
        self, state: dict[str, Any], metrics: dict[str, float], shard: dict | None = None
    ) -> None:
        import ray.train

        if self.rank != 0 and shard is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="gnnrec-checkpoint-") as folder:
            if self.rank == 0:
                save_checkpoint(state, Path(folder) / STATE_FILE)
            if shard is not None:
                save_checkpoint(shard, Path(folder) / _table_file(self.rank))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


class AllReduceCounter:
    """Counts the bytes DDP all-reduces (a comm hook around the default one)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.calls = 0

    def attach(self, ddp: torch.nn.parallel.DistributedDataParallel):
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        def hook(state, bucket):
            buffer = bucket.buffer()
            self.bytes += buffer.numel() * buffer.element_size()
            self.calls += 1
            return default_hooks.allreduce_hook(state, bucket)

        ddp.register_comm_hook(None, hook)
        return ddp


def _gather_workers(facts: dict, run_dir: Path, rank: int) -> None:
    """Rank 0 writes every worker's ``facts`` to ``run_dir/workers.json``."""
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, facts)
    if rank == 0:
        write_json_atomic(run_dir / WORKERS_FILE, everyone)


def train_worker(loop_config: dict) -> None:
    """The per-worker function: map the shared data, build the model and the trainer, train."""
    import ray
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    model_config = ModelConfig(**loop_config["model"])
    train_config = TrainConfig(**loop_config["train"])
    layout = ParallelLayout(**loop_config["parallel"])
    run_dir = Path(loop_config["run_dir"])
    before = process_memory()
    arrays = ray.get(loop_config["data"])
    shared_bytes = touch_pages(arrays)
    loaded = process_memory()
    data = unshare(arrays)
    device = ray.train.torch.get_device()
    model = build_model(
        model_config,
        data.num_users,
        data.num_items,
        data.feature_dim,
        train_config.seed,
        draw_id_table=not train_config.sharded_ids,  # else each worker draws its own rows
        num_entities=data.num_entities,
        num_relations=data.num_relations,
    ).to_device(device)
    counter = AllReduceCounter()

    def wrap(module: torch.nn.Module) -> torch.nn.Module:
        if world_size == 1 or not any(p.requires_grad for p in module.parameters()):
            return module  # nothing for DDP (e.g. LightGCN with its tables sharded)
        device_ids = [device.index] if device.type == "cuda" else None
        return counter.attach(
            torch.nn.parallel.DistributedDataParallel(module, device_ids=device_ids)
        )

    facts = {
        "rank": rank,
        "host": socket.gethostname(),
        "node_ip": ray.util.get_node_ip_address(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "device": str(device),
        "shared_bytes": shared_bytes,
        "memory_before_data": before,
        "memory_after_data": loaded,
    }
    _gather_workers(facts, run_dir, rank)
    trainer = Trainer(
        model,
        data,
        train_config,
        run_dir if rank == 0 else None,
        shard=layout.shard(rank, world_size),
        checkpoints=RayCheckpoints(rank),
        wrap=wrap,
        provenance=loop_config.get("provenance"),
        select=loop_config.get("select", "auto"),
        initial=ray.get(loop_config["initial"]) if loop_config.get("initial") else None,
        trainable=loop_config.get("trainable"),
        trainable_rows=loop_config.get("trainable_rows"),
        callbacks=loop_config.get("callbacks", ()) if rank == 0 else (),
    )
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        for callback in trainer.callbacks:
            callback.on_train_begin(loop_config.get("run_config", {}), run_dir)
    tables = dict(trainer.tables)  # (a single worker makes them dense again after training)
    facts.update(
        table_bytes=sum(t.shard.nbytes + t.state.nbytes for t in tables.values()),
        table_total_bytes=sum(
            t.num_rows * (t.dim * t.shard.element_size() + 4) for t in tables.values()
        ),
    )
    with deterministic_algorithms(train_config.deterministic):
        trainer.train()
    facts.update(
        table_bytes_sent=sum(t.bytes_sent for t in tables.values()),
        memory_end=process_memory(),
        start_epoch=trainer.start_epoch,
        steps=trainer.steps_run,
        allreduce_bytes=counter.bytes,
        allreduce_calls=counter.calls,
    )
    _gather_workers(facts, run_dir, rank)


def worker_error(err: Exception) -> Exception:
    """The first worker's own exception behind Ray Train's ``WorkerGroupError`` (a diverged
    loss, bad data): what the user needs, without Ray's wrapping and the worker traceback; any
    other error as it is."""
    failures = getattr(err, "worker_failures", None) or {}
    for rank in sorted(failures):
        cause = failures[rank]
        while getattr(cause, "cause", None) is not None:  # a RayTaskError wraps the original
            cause = cause.cause
        if isinstance(cause, ValueError | OSError):
            return ValueError(f"worker {rank}: {cause}")
    return err


def _check_fits_this_machine(layout: ParallelLayout, each: dict, have: dict) -> None:
    """On this machine's own Ray instance nothing can be added: workers that do not fit would
    wait for resources forever, so say so before starting (elastic: the fewest workers)."""
    workers = layout.worker_counts.start
    for kind, amount in each.items():
        need, total = workers * amount, have.get(kind, 0)
        if need > total:
            key = "cpus_per_worker" if kind == "CPU" else "gpus_per_worker"
            raise ValueError(
                f"parallel: {workers} workers x {amount} {kind} need {need:g} {kind}s; "
                f"this machine has {total:g}: lower parallel.num_workers or parallel.{key} "
                "(a fraction is allowed), or pass --address of a larger Ray cluster"
            )


def put_training_data(data: TrainingData, layout: ParallelLayout) -> tuple[Any, TrainingData]:
    """Puts ``data`` into the object store of the Ray cluster ``layout`` names (connecting
    first); returns its reference, for :func:`fit_on_ray`, and ``data`` mapped back read-only
    from the stored copy, for the caller to keep in place of its own (one copy on the driver's
    node, not two)."""
    connect(layout.address, log_to_driver=layout.worker_logs)
    import ray

    ref = ray.put(share(data))
    return ref, unshare(ray.get(ref))


def fit_on_ray(
    model: ModelConfig,
    train: TrainConfig,
    layout: ParallelLayout,
    run_dir: str | Path,
    data: TrainingData | Any,
    provenance: dict | None = None,
    select: str = "auto",
    initial: dict[str, torch.Tensor] | None = None,
    trainable: list[str] | None = None,
    trainable_rows: torch.Tensor | None = None,
    callbacks: Sequence[Callback] = (),
    run_config: dict | None = None,
) -> FitResult:
    """Trains the model ``model`` describes on ``data`` (or the reference
    :func:`put_training_data` gave for it) with ``train`` on Ray Train, spread as ``layout``
    says (see :class:`~gnnrec.distributed.layout.ParallelLayout`); the run's files go to
    ``run_dir``; ``provenance``: saved in every checkpoint; ``select``: ``eval.select``;
    ``initial``, ``trainable``, ``trainable_rows``: the weights to start from and which of them
    train (see :class:`~gnnrec.train.trainer.Trainer`); ``callbacks``: pickled to rank 0's
    worker, which starts them with ``run_config`` (the whole run's configuration)."""
    # first: a private instance must be set up before Ray is imported
    connect(layout.address, log_to_driver=layout.worker_logs)
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    from gnnrec.distributed.loopback_group import LoopbackTorchConfig

    run_dir = Path(run_dir).resolve()
    resources = {"CPU": layout.cpus_per_worker}
    if layout.gpus_per_worker:
        resources["GPU"] = layout.gpus_per_worker
    if not (layout.address or os.environ.get("RAY_ADDRESS")):
        _check_fits_this_machine(layout, resources, ray.cluster_resources())
    counts = layout.worker_counts
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={
            "model": dataclasses.asdict(model),
            "train": dataclasses.asdict(train),
            "parallel": dataclasses.asdict(layout),
            "data": ray.put(share(data)) if isinstance(data, TrainingData) else data,
            "run_dir": str(run_dir),
            "provenance": provenance,
            "select": select,
            "initial": None if initial is None else ray.put(initial),
            "trainable": trainable,
            "trainable_rows": trainable_rows,
            "callbacks": list(callbacks),
            "run_config": run_config or {},
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=(counts.start, counts.stop - 1) if len(counts) > 1 else counts.start,
            use_gpu=bool(layout.gpus_per_worker),
            resources_per_worker=resources,
        ),
        torch_config=LoopbackTorchConfig(backend=layout.process_group_backend),
        run_config=ray.train.RunConfig(
            name="train",
            storage_path=layout.storage_path or str(run_dir / "ray"),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=layout.checkpoints_to_keep),
            failure_config=ray.train.FailureConfig(max_failures=layout.max_failures),
            # Ray Train's per-report INFO lines repeat what metrics.jsonl holds.
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as err:
        raise worker_error(err) from err
    if result.checkpoint is None:
        raise RuntimeError(f"the Ray Train run in {run_dir} ended without a checkpoint")
    with result.checkpoint.as_directory() as folder:
        state = load_checkpoint(Path(folder) / STATE_FILE)
        best = dict(state["best_model"])
        shards = load_table_shards(Path(folder))
        for name in shards[0]["tables"] if shards else ():
            parts = [shard["tables"][name]["best"] for shard in shards]
            best[f"{name}.weight"] = rows_of_rank(parts, rank=0, world=1)  # whole
    workers_file = run_dir / WORKERS_FILE
    workers = read_json(workers_file) if workers_file.exists() else []
    return FitResult(best, state["history"], state["best_epoch"], workers)
