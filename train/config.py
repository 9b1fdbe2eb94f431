"""The ``[train]`` section: optimisation, batching, sampling and where training runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch

from gnnrec.common.devices import check_device_name, resolve_device
from gnnrec.common.typed_fields import check_fields


@dataclass(kw_only=True)
class TrainConfig:
    """Optimisation. ``mode``: ``full`` propagates over the whole training graph each step,
    ``sampled`` over a neighbor-sampled subgraph of the batch (``fanouts`` per layer), sampled
    where ``sample_on`` says: ``cpu`` (the graph stays in host memory), ``device`` (a copy of
    the graph in the training device's memory, sampled there) or ``pinned`` (the graph in pinned
    host memory, sampled on the GPU, which reads it in place: graphs larger than the GPU).
    ``device``: where one process trains (``auto``: a GPU when torch sees one; on Ray the
    workers' devices come from ``parallel.gpus_per_worker``)."""

    # What may change when a run resumes (anything else must match its checkpoint).
    RESUMABLE: ClassVar[frozenset[str]] = frozenset(
        {
            "epochs",
            "patience",
            "progress",
            "device",
            "matmul_precision",
            "valid_chunk_nodes",
            "deterministic",
        }
    )

    # bpr | mse (ratings) | bpr+simgcl: BPR plus SimGCL's contrastive term (two noise-perturbed
    # views of the batch's users and positive items, InfoNCE; gcn, lightgcn and gat)
    objective: Literal["bpr", "mse", "bpr+simgcl"] = "bpr"
    simgcl_weight: float = 0.02  # lambda of the InfoNCE term (see bench/README.md, Convergence)
    simgcl_eps: float = 0.1  # the noise's norm in each layer
    simgcl_temperature: float = 0.2
    mode: Literal["full", "sampled"] = "full"
    fanouts: list[int] = field(default_factory=lambda: [10, 10, 10])
    # Per-relation fanouts of a typed model (model.relations = "typed"), overriding fanouts for
    # the relations named (rates, rated_by, user_links, item_links, and any entity relation and
    # its reverse; checked against the graph's relations): a list per hop, each >= 0
    # (0: none of that relation at that hop) or -1 (all)
    relation_fanouts: dict[str, list[int]] = field(default_factory=dict)
    sample_on: Literal["cpu", "device", "pinned"] = "cpu"
    prefetch: int = 2  # sampled batches prepared ahead on a background thread (0: none)
    features_on: Literal["host", "pinned", "device"] = "host"
    feature_cache_nodes: int = 0  # highest-degree nodes whose features live on the device
    epochs: int = 30
    batch_size: int = 2048
    # at most this many batches an epoch (0: all): the first ones of the epoch's seeded order,
    # so a huge log trains and validates on a schedule of its own
    steps_per_epoch: int = 0
    # pairs: every training pair once an epoch | users: LightGCN's
    sampling: Literal["pairs", "users"] = "pairs"
    lr: float = 5e-3
    l2: float = 1e-4
    # How the ID tables (embeddings, rating biases) learn: "adam" with the other parameters
    # (a dense [N, H] gradient and an update of every row each step), or "rowwise_adagrad"
    # (only a batch's rows are read and written, id_lr its step size; with several workers the
    # tables are sharded by rows over them: train/sharded_table.py).
    id_optimizer: Literal["adam", "rowwise_adagrad"] = "adam"
    id_lr: float = 0.05
    # Where the rows of row-wise tables live: "device" (the training device), or "host" /
    # "pinned" (host memory, page-locked for a GPU to read in place: a table larger than the
    # device) with each process's id_cache_rows highest-degree rows cached on the device.
    id_table_on: Literal["device", "host", "pinned"] = "device"
    id_cache_rows: int = 0
    num_negatives: int = 1
    eval_every: int = 1
    patience: int = 5
    valid_users: int = 0  # validate on a fixed seeded sample of this many users (0: all)
    # > 0: validation embeddings computed this many nodes at a time, as eval.chunk_nodes (host
    # memory: two [N, H] buffers instead of every layer's and its temporaries); 0: at once
    valid_chunk_nodes: int = 0
    seed: int = 0
    progress: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # fp32 matmuls on a GPU: "high" lets them use TF32 tensor cores, "highest" keeps full fp32
    # (torch.set_float32_matmul_precision); the CPU always computes in full fp32.
    matmul_precision: Literal["highest", "high", "medium"] = "high"
    # torch's deterministic algorithms while training and evaluating: bit-identical reruns on
    # any thread count (train/determinism.py says what is and is not promised)
    deterministic: bool = False

    def __post_init__(self) -> None:
        check_fields(self)
        check_device_name(self.device, "train.device")
        if self.prefetch < 0 or self.feature_cache_nodes < 0:
            raise ValueError("prefetch and feature_cache_nodes must be >= 0")
        for name in ("epochs", "batch_size", "num_negatives", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        for name in ("simgcl_weight", "simgcl_eps", "simgcl_temperature"):
            if getattr(self, name) <= 0:
                raise ValueError(f"train.{name} must be > 0, got {getattr(self, name)}")
        bad = [f for f in self.fanouts if f != -1 and f < 1]
        if bad or not self.fanouts:
            raise ValueError(
                f"fanouts must be a non-empty list of neighbors per hop, each >= 1 or -1 (all), "
                f"got {self.fanouts}"
            )
        for name, hops in self.relation_fanouts.items():
            if not isinstance(hops, list) or any(
                isinstance(f, bool) or not isinstance(f, int) or f < -1 for f in hops
            ):
                raise ValueError(
                    f"train.relation_fanouts.{name} must be a list of neighbors per hop, each "
                    f">= 0 or -1 (all), got {hops!r}"
                )
            if len(hops) != len(self.fanouts):
                raise ValueError(
                    f"train.relation_fanouts.{name} has {len(hops)} hops and train.fanouts "
                    f"{len(self.fanouts)}: one fanout per hop for every relation"
                )
        if self.id_cache_rows < 0:
            raise ValueError(f"id_cache_rows must be >= 0, got {self.id_cache_rows}")
        if (self.id_table_on != "device" or self.id_cache_rows) and not self.sharded_ids:
            raise ValueError(
                "id_table_on and id_cache_rows place row-wise tables: they need "
                'id_optimizer = "rowwise_adagrad"'
            )
        if self.id_lr <= 0:
            raise ValueError(f"id_lr must be > 0, got {self.id_lr}")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0 (0: no L2 penalty), got {self.l2}")
        if self.valid_users < 0:
            raise ValueError("valid_users must be >= 0 (0: every validation user)")
        if self.valid_chunk_nodes < 0:
            raise ValueError("valid_chunk_nodes must be >= 0 (0: the whole graph at once)")
        if self.steps_per_epoch < 0:
            raise ValueError("steps_per_epoch must be >= 0 (0: every batch of the epoch)")

    @property
    def sharded_ids(self) -> bool:
        """The ID tables are trained row-wise, sharded over the processes (drawn by the trainer,
        not with the model)."""
        return self.id_optimizer != "adam"

    def torch_device(self) -> torch.device:
        """The device ``device`` names (``auto``: ``cuda`` when torch sees a GPU, else ``cpu``)."""
        return resolve_device(self.device, "train.device")
