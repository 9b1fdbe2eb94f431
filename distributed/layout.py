"""The parallel layout of a training run: one validated dataclass, the ``[parallel]`` table of a
run's configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar, Literal

from gnnrec.common.typed_fields import check_fields
from gnnrec.train.data_shard import DataShard

BACKENDS = ("auto", "gloo", "nccl")


@dataclass(kw_only=True)
class ParallelLayout:
    """How a run is spread over processes.

    ``num_workers``: Ray Train workers, one DDP process each (0: train in this process, without
    Ray). ``min_workers``: elastic (Ray Train's worker range): the group starts, and restarts
    after losing a node, with as many workers as the cluster holds, at least this many (0:
    exactly ``num_workers``); it resumes from the last checkpoint on the new count.
    ``gpus_per_worker``: 0 (CPU workers) or 1 (one GPU per process, as DDP wants).
    ``cpus_per_worker``: CPUs Ray reserves per worker (sampling and feature gathering run there).
    ``partitions``: slices every global batch is cut into (0: one per worker; elastic: the least
    common multiple of the worker counts, so that every count divides them); worker ``r``
    computes slices ``r, r + W, ...``, so a run's result depends on ``partitions`` and not on
    how many workers share them (see :mod:`gnnrec.train.data_shard`). ``backend``: the DDP
    process group (``auto``: nccl with GPUs, gloo without). ``address``: a running Ray cluster
    (``auto``, ``ray://head:10001``); empty: the cluster of the Ray job this runs in, else a
    private local instance bound to 127.0.0.1. ``max_failures``: worker-group restarts from the
    last checkpoint before the run fails (-1: unlimited). ``storage_path``: where Ray Train keeps
    checkpoints (empty: ``<run_dir>/ray``; on several machines, storage every node can reach).
    ``worker_logs``: stream the workers' output (Ray Train's per-report lines) to this console;
    off by default, since ``metrics.jsonl`` holds every epoch and a worker's error reaches the
    driver with its traceback either way.
    """

    RESUMABLE: ClassVar[frozenset[str]]  # every field but partitions (set below the class)

    num_workers: int = 0
    min_workers: int = 0
    gpus_per_worker: int = 0
    cpus_per_worker: float = 1.0
    partitions: int = 0
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    address: str = ""
    max_failures: int = 3
    storage_path: str = ""
    checkpoints_to_keep: int = 2
    worker_logs: bool = False  # stream the workers' and Ray Train's own output to this console

    def __post_init__(self) -> None:
        check_fields(self)
        problems = []
        if self.num_workers < 0:
            problems.append(
                f"num_workers must be >= 0 (0 trains without Ray), got {self.num_workers}"
            )
        if self.gpus_per_worker not in (0, 1):
            problems.append(
                f"gpus_per_worker must be 0 or 1 (DDP runs one process per GPU; use more "
                f"workers for more GPUs), got {self.gpus_per_worker}"
            )
        if self.cpus_per_worker <= 0:
            problems.append(f"cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.partitions < 0:
            problems.append(f"partitions must be >= 0 (0: one per worker), got {self.partitions}")
        if not 0 <= self.min_workers <= self.num_workers:
            problems.append(
                f"min_workers must be in [0, num_workers = {self.num_workers}] (0: not elastic), "
                f"got {self.min_workers}"
            )
        elif self.partitions > 0 and any(self.partitions % w for w in self.worker_counts):
            counts = self.worker_counts
            problems.append(
                f"partitions ({self.partitions}) must be a multiple of every number of workers "
                f"the run may have ({counts.start}..{counts.stop - 1}: "
                f"{math.lcm(*counts)} is the smallest) so that every worker computes as many "
                "batch slices"
            )
        if self.backend == "nccl" and not self.gpus_per_worker:
            problems.append("backend 'nccl' needs GPUs: set gpus_per_worker = 1 or use 'gloo'")
        if self.max_failures < -1:
            problems.append(f"max_failures must be >= -1 (-1: unlimited), got {self.max_failures}")
        if self.checkpoints_to_keep < 1:
            problems.append("checkpoints_to_keep must be >= 1")
        if self.address and not self.num_workers:
            problems.append("address names a Ray cluster, which needs num_workers >= 1")
        if problems:
            raise ValueError("parallel layout: " + "; ".join(problems))

    @property
    def world_size(self) -> int:
        return max(self.num_workers, 1)

    @property
    def worker_counts(self) -> range:
        """The numbers of workers the run may have (one, unless elastic)."""
        return range(self.min_workers or self.world_size, self.world_size + 1)

    @property
    def num_partitions(self) -> int:
        return self.partitions or math.lcm(*self.worker_counts)

    @property
    def process_group_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        return "nccl" if self.gpus_per_worker else "gloo"

    def shard(self, rank: int, world_size: int) -> DataShard:
        """The batch slices of worker ``rank`` of ``world_size``."""
        return DataShard(rank, world_size, self.num_partitions)


# A run's results depend on how batches are cut (partitions), not on where the slices run: every
# other field, a new one included, may change when a run resumes.
ParallelLayout.RESUMABLE = frozenset(f.name for f in fields(ParallelLayout)) - {"partitions"}
