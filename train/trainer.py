"""The trainer: ``train()`` owns resume, the epoch loop, validation, early stopping and
checkpoints; ``train_step()`` is one optimizer step on one global link batch.

Every random draw of epoch ``t`` comes from a generator seeded by ``(seed, t)`` (batch order,
negatives, full-graph ID dropout), or, when batches are cut into several slices, by
``(seed, t, step, slice)`` (neighbor sampling and ID dropout of that slice). A checkpoint is
written at the end of every epoch, so a run killed anywhere and resumed ends with the same
parameters and metrics as an uninterrupted run. Under data parallelism (``shard``, see
:mod:`gnnrec.train.data_shard`) every process runs this same loop on its slices; losses are
summed across processes, and rank 0 validates, logs and writes; each process saves its own
rows of the sharded ID tables.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from gnnrec.common.atomic_files import write_text_atomic
from gnnrec.common.log import get_logger
from gnnrec.models.graph_view import GraphView
from gnnrec.models.recommender import Recommender
from gnnrec.train.callbacks import Callback, epoch_ended
from gnnrec.train.checkpoint import (
    PROVENANCE,
    TABLE_SHARDS,
    CheckpointStore,
    LocalCheckpoints,
)
from gnnrec.train.config import TrainConfig
from gnnrec.train.data_shard import DataShard, slice_generator
from gnnrec.train.early_stopping import EarlyStopping
from gnnrec.train.evaluate import node_embeddings, validation_metrics
from gnnrec.train.feature_store import FeatureStore
from gnnrec.train.link_batches import LinkBatch, LinkBatcher
from gnnrec.train.objective import Contrast, LinkObjective
from gnnrec.train.prefetch import prefetch
from gnnrec.train.sampler import NeighborSampler
from gnnrec.train.sharded_table import rows_of_rank, shard_tables, unshard_tables
from gnnrec.train.training_data import TrainingData

log = get_logger(__name__)


@dataclass
class SliceInputs:
    """One batch slice, ready for the loss on the training device: the slice, the (sub)graph's
    nodes ``n_id`` ``[n]``, their features ``x`` ``[n, F]`` (or None), the graph view, the
    ID-embedding mask ``[n]``, each seed's local id ``[B * (2 + K)]`` and ratings ``[B]``."""

    batch: LinkBatch
    n_id: torch.Tensor
    x: torch.Tensor | None
    view: GraphView
    id_mask: torch.Tensor
    seed_index: torch.Tensor
    ratings: torch.Tensor | None
    cold: torch.Tensor | None = None  # [B * (1 + K)]: items scored as cold (model.cold_dropout)


def validation_sample(
    valid: tuple[np.ndarray, np.ndarray, np.ndarray], max_users: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validation pairs of at most ``max_users`` users (0: all), the same users every
    epoch: early stopping on a large graph need not rank every item for every user."""
    users = np.unique(valid[0])
    if not max_users or users.size <= max_users:
        return valid
    kept = np.random.default_rng(seed).choice(users, max_users, replace=False)
    keep = np.isin(valid[0], kept)
    return tuple(a[keep] for a in valid)


LOGGED = ("recall@20", "ndcg@20", "rmse", "mae", "users")  # the validation metrics logged


def epoch_line(row: dict, epochs: int, select: str = "auto") -> str:
    """An epoch's row as a line of a table: ``epoch  3/30  loss 0.1234  recall@20 0.1500
    ndcg@20 0.0700  12.3 s`` (the :data:`LOGGED` validation metrics and the one ``select``
    names, when the epoch was validated; ``metrics.jsonl`` has them all)."""
    width = len(str(epochs))
    parts = [f"epoch {row['epoch']:>{width}}/{epochs}", f"loss {row['loss']:.4f}"]
    for key, value in row.items():
        if key.startswith("valid_") and key[len("valid_") :] in (*LOGGED, select):
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            parts.append(f"{key[len('valid_') :]} {shown}")
    return "  ".join([*parts, f"{row['seconds']:6.1f} s"])


def write_history(history: list[dict], run_dir: Path) -> None:
    """``run_dir/metrics.jsonl``: one JSON row per epoch, replaced atomically."""
    rows = "".join(json.dumps(row, allow_nan=False) + "\n" for row in history)
    write_text_atomic(run_dir / "metrics.jsonl", rows)


def _distributed(shard: DataShard) -> bool:
    return shard.world_size > 1 and dist.is_available() and dist.is_initialized()


def build_sampler(
    data: TrainingData, config: TrainConfig, device: torch.device, sample_device: torch.device
) -> NeighborSampler | None:
    """The neighbor sampler of ``train.mode = "sampled"`` over the training graph, on
    ``sample_device`` (or in pinned host memory, read by the GPU); None for full-graph mode."""
    if config.mode != "sampled":
        return None
    if config.sample_on == "pinned" and device.type != "cuda":
        raise ValueError(
            "train.sample_on = 'pinned' has the GPU read the graph from pinned host memory: "
            f"it needs a model on a GPU (train.device), not on {device}"
        )
    csr = data.graph.csr
    csr = csr.pin_memory() if config.sample_on == "pinned" else csr.to(sample_device)
    fanouts = config.fanouts
    if config.relation_fanouts:
        names = data.graph.schema.relation_names
        unknown = [n for n in config.relation_fanouts if n not in names]
        if unknown:
            raise ValueError(
                f"train.relation_fanouts names {unknown}, not relations of this graph; the "
                f"relations: {', '.join(names)}"
            )
        present = set(torch.unique(data.graph.csr.relation).tolist())
        empty = [n for n in config.relation_fanouts if names.index(n) not in present]
        if empty:
            raise ValueError(
                f"train.relation_fanouts names {empty}, which have no edges in this graph "
                f"(it has {[names[r] for r in sorted(present)]})"
            )
        fanouts = {
            relation: config.relation_fanouts.get(name, config.fanouts)
            for relation, name in enumerate(names)
        }
    return NeighborSampler(csr, fanouts, sample_device)


def build_features(
    data: TrainingData, config: TrainConfig, device: torch.device, degree: torch.Tensor
) -> FeatureStore | None:
    """Where the node features are read from while training (``train.features_on``, with
    the ``feature_cache_nodes`` highest-degree rows on the device); None without features."""
    if data.features is None:
        return None
    return FeatureStore(
        data.features,
        device,
        placement=config.features_on,
        cache_nodes=config.feature_cache_nodes,
        degree=degree,
    )


def build_batcher(data: TrainingData, config: TrainConfig) -> LinkBatcher:
    """Each epoch's batches of (user, positive, negatives) from the training pairs."""
    users, items, _ = data.train
    return LinkBatcher(
        users,
        items,
        data.num_items,
        config.batch_size,
        config.num_negatives,
        positives=data.graph.csr,
        item_offset=data.num_users,
        sampling=config.sampling,
    )


def build_tables(
    model: Recommender, config: TrainConfig, device: torch.device, degree: torch.Tensor
) -> dict:
    """``train.id_optimizer = "rowwise_adagrad"``: the ID tables sharded over the processes
    (one shard alone), outside DDP and Adam; ``{}`` when Adam takes every parameter."""
    if not config.sharded_ids:
        return {}
    return shard_tables(
        model,
        config.id_lr,
        config.seed,
        device,
        config.id_table_on,
        config.id_cache_rows,
        degree,
    )


class Trainer:
    """Trains ``model`` on ``data``. ``run_dir``: where ``metrics.jsonl`` goes (None on ranks
    other than 0); ``checkpoints``: where resumable state goes (default
    ``run_dir/checkpoints/last.pt``); ``shard``: this process's slices of every batch;
    ``wrap``: wraps the loss module for data parallelism (e.g. in DDP); ``provenance``: what
    produced the run (:mod:`gnnrec.provenance`), saved in every checkpoint; ``select``: the
    validation metric that picks the best epoch (``eval.select``); ``initial``: a whole state
    dict (dense weights, whole ID tables) to start from when there is no checkpoint to resume
    (``gnnrec update``: the earlier version's weights, grown); ``trainable``: the names of the
    parameters to train (None: all; the others are frozen); ``trainable_rows``: bool ``[N]``,
    the only rows of the ID tables that train (None: all); ``callbacks``: each sees every
    epoch's row on rank 0 and may stop training (:mod:`gnnrec.train.callbacks`)."""

    def __init__(
        self,
        model: Recommender,
        data: TrainingData,
        config: TrainConfig,
        run_dir: str | Path | None,
        on_step: Callable[[int], None] | None = None,
        *,
        shard: DataShard | None = None,
        checkpoints: CheckpointStore | None = None,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
        provenance: dict | None = None,
        select: str = "auto",
        initial: dict[str, torch.Tensor] | None = None,
        trainable: list[str] | None = None,
        trainable_rows: torch.Tensor | None = None,
        callbacks: Sequence[Callback] = (),
    ):
        self.model, self.data, self.config = model, data, config
        self.callbacks = list(callbacks)
        if trainable is not None:
            for name, parameter in model.named_parameters():
                parameter.requires_grad_(name in trainable)
        self.provenance, self.select, self.initial = provenance, select, initial
        self.shard = shard or DataShard()
        self.run_dir = None if run_dir is None else Path(run_dir)
        if checkpoints is None:
            if self.run_dir is None:
                raise ValueError("a Trainer needs a run_dir or a checkpoint store")
            checkpoints = LocalCheckpoints(self.run_dir / "checkpoints" / "last.pt")
        self.checkpoints = checkpoints
        self.on_step = on_step
        self.device = model.device
        if self.device.type == "cuda":
            torch.set_float32_matmul_precision(config.matmul_precision)
        self.view = GraphView.of(data.graph.csr)
        self.device_view = self.view.to(self.device) if config.mode == "full" else None
        self.all_nodes = torch.arange(data.graph.num_nodes)
        degree = data.graph.csr.degree()
        self.has_edges = degree > 0
        self.sample_device = torch.device("cpu") if config.sample_on == "cpu" else self.device
        self.sampler = build_sampler(data, config, self.device, self.sample_device)
        if self.sampler is not None:
            self.sampled_has_edges = self.has_edges.to(self.sample_device)
        self.features = build_features(data, config, self.device, degree)
        self.valid = validation_sample(data.valid, config.valid_users, config.seed)
        self.ratings = torch.as_tensor(data.train[2], dtype=torch.float32)
        self.batcher = build_batcher(data, config)
        model.configure_objective(config.objective, float(self.ratings.mean()))
        self.tables = build_tables(model, config, self.device, degree)
        if trainable_rows is not None:
            self._freeze_rows(torch.as_tensor(trainable_rows, dtype=torch.bool))
        contrast = Contrast(config.simgcl_weight, config.simgcl_eps, config.simgcl_temperature)
        self.objective = LinkObjective(model, config.objective, config.l2, contrast)
        self.step_module = wrap(self.objective) if wrap is not None else self.objective
        # (Adam's parameter list as it always was for "adam": its checkpoints stay loadable)
        dense = [p for p in model.parameters() if p.requires_grad or not self.tables]
        self.optimizer = torch.optim.Adam(dense, lr=config.lr) if dense else None
        self.steps_run = 0  # optimizer steps taken by this object (not counting resumed ones)

    @property
    def steps_per_epoch(self) -> int:
        """Batches an epoch: all, or ``train.steps_per_epoch`` when fewer."""
        cap = self.config.steps_per_epoch
        return min(len(self.batcher), cap) if cap else len(self.batcher)

    @property
    def is_main(self) -> bool:
        return self.shard.rank == 0

    def embeddings(self) -> torch.Tensor:
        chunk = self.config.valid_chunk_nodes
        return node_embeddings(self.model, self.data, self.view, chunk_nodes=chunk)

    def _slice_inputs(
        self, batch: LinkBatch, generator: torch.Generator, full_keep: torch.Tensor | None
    ) -> SliceInputs:
        U, device = self.data.num_users, self.device
        seeds = torch.cat([batch.users, batch.pos_items + U, batch.neg_items.flatten() + U])
        has_edges = self.has_edges
        if self.sampler is None:
            n_id, view, index, keep = self.all_nodes, self.device_view, seeds, full_keep
        else:
            # Everything stays on the sampling device (no host round trip on a GPU).
            sub = self.sampler.sample(seeds, generator)
            view = GraphView.of(sub.csr, hops=sub.hops).to(device)  # layers trimmed to the hops
            n_id, index = sub.n_id, sub.seed_index
            keep = torch.rand(n_id.numel(), generator=generator, device=generator.device)
            keep = keep >= self.model.id_dropout
            has_edges = self.sampled_has_edges
        ratings = self.ratings[batch.index] if self.config.objective == "mse" else None
        cold = None
        share = getattr(getattr(self.model, "config", None), "cold_dropout", 0.0)
        if share and self.features is not None:  # drawn per slice: alike on any worker count
            items = batch.pos_items.numel() + batch.neg_items.numel()
            cold = torch.rand(items, generator=generator, device=generator.device) < share
        return SliceInputs(
            batch=batch.to(device),
            n_id=n_id.to(device),
            x=None if self.features is None else self.features.gather(n_id).float(),
            view=view,
            id_mask=(has_edges[n_id] & keep).to(device),
            seed_index=index.to(device),
            ratings=None if ratings is None else ratings.to(device),
            cold=None if cold is None else cold.to(device),
        )

    def prepare(
        self, batch: LinkBatch, generator: torch.Generator, key: tuple[int, int] = (0, 0)
    ) -> list[SliceInputs]:
        """Everything before the forward pass of a global batch: this process's slices,
        sampled (``generator`` is the epoch's, shared by all processes; ``key`` ``(epoch,
        step)`` seeds each slice) and gathered onto the device. Runs ahead of training on a
        background thread when ``config.prefetch``."""
        full_keep = None
        if self.sampler is None:  # one mask for the whole graph, drawn alike by every process
            full_keep = torch.rand(self.all_nodes.numel(), generator=generator)
            full_keep = full_keep >= self.model.id_dropout
        slices = []
        for part in self.shard.parts:
            part_generator = (
                generator
                if self.shard.partitions == 1 and self.sample_device.type == "cpu"
                else slice_generator(self.config.seed, *key, part, device=self.sample_device)
            )
            piece = batch.part(part, self.shard.partitions)
            slices.append(self._slice_inputs(piece, part_generator, full_keep))
        return slices

    def step(self, slices: list[SliceInputs], batch_size: int) -> float:
        """One optimizer step from prepared slices of a global batch of ``batch_size``; returns this
        process's share of the batch's mean loss (on one process, the loss)."""
        self.model.train()
        total = 0.0
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        for table in self.tables.values():
            table.zero_grad()
        no_sync = getattr(self.step_module, "no_sync", None)
        for k, inputs in enumerate(slices):
            last = k == len(slices) - 1
            with nullcontext() if last or no_sync is None else no_sync():
                loss = self.step_module(
                    inputs.n_id,
                    inputs.x,
                    inputs.view,
                    inputs.id_mask,
                    inputs.seed_index,
                    inputs.batch,
                    inputs.ratings,
                    inputs.cold,
                )
                size = len(inputs.batch)
                (loss * self.shard.weight(size, batch_size)).backward()
            total += loss.item() * size / batch_size
        if self.optimizer is not None:
            self.optimizer.step()
        for table in self.tables.values():
            table.step()
        self.steps_run += 1
        return total

    def train_step(
        self, batch: LinkBatch, generator: torch.Generator, key: tuple[int, int] = (0, 0)
    ) -> float:
        """:meth:`prepare` then :meth:`step`: one optimizer step on a global batch."""
        return self.step(self.prepare(batch, generator, key), len(batch))

    def _sum_over_workers(self, values: list[float]) -> list[float]:
        if not _distributed(self.shard):
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def _from_main(self, value):
        """``value`` as computed on rank 0, on every process."""
        if not _distributed(self.shard):
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation metrics; ``score`` is what early stopping maximises."""
        z = self.embeddings()  # scored where it is (the GPU when training there)
        objective = self.config.objective
        return validation_metrics(self.model, z, self.data, self.valid, objective, self.select)

    def _snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Copies of the weights to keep as the best so far: the dense ones, and this rank's
        rows of the sharded tables (no process holds a whole table)."""
        model = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        tables = {name: t.shard.detach().cpu().clone() for name, t in self.tables.items()}
        return model, tables

    def _table_shard(self, best: EarlyStopping) -> dict | None:
        """This rank's part of a checkpoint: its rows of every table, their row-wise state and
        the best weights' rows (None without sharded tables)."""
        if not self.tables:
            return None
        tables = {
            name: {**t.shard_state(), "best": t.shard if best.tables is None else best.tables[name]}
            for name, t in self.tables.items()
        }
        return {"rank": self.shard.rank, "world": self.shard.world_size, "tables": tables}

    def _state(self, epoch: int, step: int, best: EarlyStopping, history: list[dict]) -> dict:
        """The resumable state but the sharded tables (see :meth:`_table_shard`)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "epoch": epoch,
            # Every random draw is a function of (seed, epoch, step, slice): the cursor and the
            # seed are the whole sampler and RNG state.
            "data_cursor": {"next_epoch": epoch + 1, "step": step},
            "rng": {"seed": self.config.seed, "partitions": self.shard.partitions},
            **best.state(self.model.state_dict()),
            "history": history,
            PROVENANCE: self.provenance,
        }

    def _resume(self, state: dict) -> tuple[list[dict], int, EarlyStopping]:
        saved = state.get("rng", {}).get("partitions", 1)
        if saved != self.shard.partitions:
            raise ValueError(
                f"the checkpoint was trained with {saved} batch partitions, this run has "
                f"{self.shard.partitions}: resume with parallel.partitions = {saved} on a "
                f"number of workers that divides {saved}"
            )
        shards = state.get(TABLE_SHARDS, [])
        self.model.load_state_dict(state["model"])
        best_tables = {}
        for name, table in self.tables.items():
            parts = [shard["tables"][name] for shard in shards]
            table.load_(parts)
            best = [part["best"] for part in parts]
            best_tables[name] = rows_of_rank(best, self.shard.rank, self.shard.world_size)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        best = EarlyStopping.restore(state, self.config.patience, best_tables)
        return state["history"], state["epoch"] + 1, best

    def _freeze_rows(self, trainable: torch.Tensor) -> None:
        """Only the ID-table rows where ``trainable`` ``[N]`` is True get gradients (dense
        tables: through a hook) or steps (sharded tables)."""
        for table in self.model.embedding_tables():
            if isinstance(table, nn.Embedding) and table.weight.requires_grad:
                keep = trainable.to(table.weight.device, table.weight.dtype).unsqueeze(1)
                table.weight.register_hook(lambda grad, keep=keep: grad * keep)
        for table in self.tables.values():
            table.freeze_rows_(trainable)

    def _start_from(self, weights: dict[str, torch.Tensor]) -> None:
        """Loads ``weights``: the dense ones into the model, this rank's rows of every sharded
        table into it."""
        whole = {f"{name}.weight": name for name in self.tables}
        dense = {k: v for k, v in weights.items() if k not in whole}
        missing, unexpected = self.model.load_state_dict(dense, strict=False)
        if unexpected or any(k not in whole for k in missing):
            raise ValueError(f"the initial weights do not fit the model: {missing + unexpected}")
        for key, name in whole.items():
            rows = rows_of_rank([weights[key]], self.shard.rank, self.shard.world_size)
            self.tables[name].assign_(rows)

    def _evaluate_epoch(self, epoch: int, row: dict, best: EarlyStopping) -> None:
        """Adds validation metrics to ``row`` and updates the best-so-far ``best``."""
        cfg = self.config
        if len(self.data.valid[0]) == 0:
            best.keep_latest(epoch)  # no validation set: the latest
            return
        if (epoch + 1) % cfg.eval_every and epoch + 1 != cfg.epochs:
            return
        for table in self.tables.values():
            table.gather_()  # whole on rank 0, for its validation
        valid = self._from_main(self.validate() if self.is_main else None)
        for table in self.tables.values():
            table.release_()
        row.update({f"valid_{k}": v for k, v in valid.items() if k != "score"})
        best.update(epoch, valid["score"], self._snapshot)

    def train(self) -> list[dict]:
        """Runs (or resumes) training; leaves the best validated weights in the model (sharded
        tables over several processes: each its own rows; one process: dense again) and their
        epoch in ``best_epoch``."""
        cfg = self.config
        history: list[dict] = []
        best, start = EarlyStopping(cfg.patience), 0
        state = self.checkpoints.load()
        if state is None and self.initial is not None:
            self._start_from(self.initial)
        if state is not None:
            history, start, best = self._resume(state)
            if self.is_main and start < cfg.epochs:
                log.info("resuming from epoch %d of %d (%d done)", start + 1, cfg.epochs, start)
            elif self.is_main:
                log.info("%d epochs done, train.epochs = %d: nothing to train", start, cfg.epochs)
        self.start_epoch = start
        for epoch in range(start, cfg.epochs):
            if best.stopped:
                break
            row = self._train_epoch(epoch)
            self._evaluate_epoch(epoch, row, best)
            history.append(row)
            self._end_epoch(epoch, row, best, history)
            if self._from_main(self.is_main and epoch_ended(self.callbacks, row)):
                log.info("epoch %d: a callback stopped training", epoch + 1)
                break
        self._keep_best(best)
        return history

    def _train_epoch(self, epoch: int) -> dict:
        """One epoch's steps (batches sampled and gathered ahead on a thread when sampled);
        returns its row: ``epoch`` (1-based), ``step``, mean ``loss``, ``seconds``,
        ``examples``. A loss that is not finite stops the run before anything is saved."""
        cfg = self.config
        began, losses, examples = time.perf_counter(), [], 0
        first_step = epoch * self.steps_per_epoch
        bar = tqdm(
            self._prepared_batches(epoch),
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not (cfg.progress and self.is_main),
            leave=False,
            mininterval=1.0,
        )
        for i, size, slices in bar:
            loss = self.step(slices, size)
            losses.append(loss)
            examples += size
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if self.on_step is not None:
                self.on_step(first_step + i + 1)
        (loss_sum,) = self._sum_over_workers([float(np.sum(losses))])
        row = {
            "epoch": epoch + 1,
            "step": first_step + self.steps_per_epoch,
            "loss": loss_sum / max(len(losses), 1),
            "seconds": time.perf_counter() - began,
            "examples": examples,
        }
        if not np.isfinite(row["loss"]):
            raise ValueError(
                f"training diverged: the mean loss of epoch {epoch + 1} is {row['loss']}; "
                f"nothing of it was saved (the checkpoint holds epoch {epoch} at most). "
                "Lower train.lr, or check the features for NaN"
            )
        return row

    def _prepared_batches(self, epoch: int) -> Iterator[tuple[int, int, list[SliceInputs]]]:
        """``(step, batch size, slices)`` of the epoch's batches, each prepared (sampled and
        gathered) from the epoch's seeded generator; ahead on a thread when sampled."""
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        batches = itertools.islice(self.batcher.epoch(generator), self.steps_per_epoch)
        prepared = (
            (i, len(batch), self.prepare(batch, generator, (epoch, i)))
            for i, batch in enumerate(batches)
            if len(batch) >= self.shard.partitions  # else too small for every slice
        )
        if self.sampler is not None:
            prepared = prefetch(prepared, self.config.prefetch, device=self.device)
        return prepared

    def _end_epoch(self, epoch: int, row: dict, best: EarlyStopping, history: list[dict]):
        """The epoch's checkpoint, ``metrics.jsonl`` and log line."""
        state = self._state(epoch, row["step"], best, history)
        self.checkpoints.save(state, row, self._table_shard(best))
        if self.run_dir is not None:
            write_history(history, self.run_dir)
            line = epoch_line(row, self.config.epochs, self.select)
            log.info(line)  # (train.progress: the bars only)

    def _keep_best(self, best: EarlyStopping) -> None:
        """Leaves the best weights in the model (the latest when no copy was kept) and their
        epoch in ``best_epoch``; one process's sharded tables become dense again."""
        if best.model is not None:
            self.model.load_state_dict(best.model)
        for name, table in self.tables.items() if best.tables is not None else ():
            table.assign_(best.tables[name])
        if self.shard.world_size == 1 and self.tables:
            unshard_tables(self.model, self.tables)
            self.tables = {}
        self.best_epoch = best.epoch
