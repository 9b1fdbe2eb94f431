"""The trainer: ``train()`` owns resume, the epoch loop, validation, early stopping and
checkpoints; ``train_step()`` is one optimizer step on one link batch.

Every random draw of epoch ``t`` comes from a generator seeded by ``(seed, t)``, and a
checkpoint is written at the end of every epoch, so a run killed anywhere and resumed ends with
the same parameters and metrics as an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from gnnrec.data.graph_store import GraphStore
from gnnrec.train.checkpoint import load_checkpoint, save_checkpoint
from gnnrec.train.evaluate import full_ranking_metrics, rating_metrics
from gnnrec.train.link_batches import LinkBatch, LinkBatcher
from gnnrec.train.losses import bpr_loss, l2_penalty, mse_loss
from gnnrec.train.model import GCNRecommender, GraphView
from gnnrec.train.sampler import NeighborSampler


@dataclass(kw_only=True)
class TrainConfig:
    """Optimisation. ``mode``: ``full`` propagates over the whole training graph each step,
    ``sampled`` over a neighbor-sampled subgraph of the batch (``fanouts`` per layer)."""

    objective: str = "bpr"
    mode: str = "full"
    fanouts: list[int] = field(default_factory=lambda: [10, 10, 10])
    epochs: int = 30
    batch_size: int = 2048
    lr: float = 5e-3
    l2: float = 1e-4
    num_negatives: int = 1
    eval_every: int = 1
    patience: int = 5
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.objective not in ("bpr", "mse"):
            raise ValueError(f"objective must be 'bpr' or 'mse', got {self.objective!r}")
        if self.mode not in ("full", "sampled"):
            raise ValueError(f"mode must be 'full' or 'sampled', got {self.mode!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.num_negatives < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size, num_negatives >= 1 and lr > 0 are required")
        if self.eval_every < 1 or self.patience < 1:
            raise ValueError("eval_every and patience must be >= 1")


@dataclass
class TrainingData:
    """What training reads: the training graph, node features ``[U + I, F]`` (or None), the
    training interactions and the validation pairs (item ids are item-local)."""

    graph: GraphStore
    features: torch.Tensor | None
    train: tuple[np.ndarray, np.ndarray, np.ndarray]  # users, items, ratings
    valid: tuple[np.ndarray, np.ndarray, np.ndarray]

    @property
    def num_users(self) -> int:
        return self.graph.num_users

    @property
    def num_items(self) -> int:
        return self.graph.num_items


def node_embeddings(
    model: GCNRecommender, data: TrainingData, view: GraphView | None = None
) -> torch.Tensor:
    """Final embeddings ``[U + I, H]`` over the full training graph (no ID dropout)."""
    model.eval()
    nodes = torch.arange(data.graph.num_nodes)
    with torch.no_grad():
        return model(
            nodes, data.features, view or GraphView.of(data.graph.csr), data.graph.csr.degree() > 0
        )


class Trainer:
    def __init__(
        self,
        model: GCNRecommender,
        data: TrainingData,
        config: TrainConfig,
        run_dir: str | Path,
        on_step: Callable[[int], None] | None = None,
    ):
        self.model, self.data, self.config = model, data, config
        self.run_dir = Path(run_dir)
        self.on_step = on_step
        self.view = GraphView.of(data.graph.csr)
        self.all_nodes = torch.arange(data.graph.num_nodes)
        self.has_edges = data.graph.csr.degree() > 0
        self.sampler = (
            NeighborSampler(data.graph.csr, config.fanouts) if config.mode == "sampled" else None
        )
        users, items, ratings = data.train
        self.ratings = torch.as_tensor(ratings, dtype=torch.float32)
        self.batcher = LinkBatcher(
            users, items, data.num_items, config.batch_size, config.num_negatives
        )
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        if config.objective == "mse":
            model.global_mean.fill_(float(self.ratings.mean()))

    def _x(self, n_id: torch.Tensor) -> torch.Tensor | None:
        return None if self.data.features is None else self.data.features[n_id]

    def embeddings(self) -> torch.Tensor:
        return node_embeddings(self.model, self.data, self.view)

    def train_step(self, batch: LinkBatch, generator: torch.Generator) -> float:
        """One Adam step on a batch; returns the loss."""
        self.model.train()
        U = self.data.num_users
        seeds = torch.cat([batch.users, batch.pos_items + U, batch.neg_items.flatten() + U])
        if self.sampler is None:
            n_id, view, index = self.all_nodes, self.view, seeds
        else:
            sub = self.sampler.sample(seeds, generator)
            n_id, view, index = sub.n_id, GraphView.of(sub.csr), sub.seed_index
        keep = torch.rand(n_id.numel(), generator=generator) >= self.model.config.id_dropout
        z = self.model(n_id, self._x(n_id), view, self.has_edges[n_id] & keep)
        B = batch.users.numel()
        z_user, z_pos, z_neg = z[index[:B]], z[index[B : 2 * B]], z[index[2 * B :]]
        if self.config.objective == "bpr":
            pos = (z_user * z_pos).sum(-1)
            neg = (z_user.unsqueeze(1) * z_neg.view(B, -1, z.shape[-1])).sum(-1)
            loss = bpr_loss(pos, neg)
        else:
            predicted = self.model.rating(z_user, z_pos, batch.users, batch.pos_items + U)
            loss = mse_loss(predicted, self.ratings[batch.index])
        if self.model.embedding is not None and self.config.l2 > 0:
            loss = loss + self.config.l2 * l2_penalty(self.model.embedding(seeds), batch_size=B)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation metrics; ``score`` is what early stopping maximises."""
        z = self.embeddings()
        U = self.data.num_users
        users, items, ratings = self.data.valid
        if self.config.objective == "mse":
            u, i = torch.as_tensor(users), torch.as_tensor(items) + U
            metrics = rating_metrics(self.model.rating(z[u], z[i], u, i), torch.as_tensor(ratings))
            return {**metrics, "score": -metrics["rmse"]}
        metrics = full_ranking_metrics(
            lambda b: z[b] @ z[U:].T,
            self.data.train[:2],
            (users, items),
            U,
            self.data.num_items,
            ks=(20,),
        )
        return {
            "recall@20": metrics["recall@20"],
            "ndcg@20": metrics["ndcg@20"],
            "score": metrics["recall@20"],
        }

    def _best(self, epoch: int, score: float) -> dict:
        weights = {k: v.clone() for k, v in self.model.state_dict().items()}
        return {"model": weights, "score": score, "epoch": epoch + 1, "bad_epochs": 0}

    def _state(self, epoch: int, best: dict, history: list[dict]) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epoch,
            "best_model": best["model"],
            "best_score": best["score"],
            "best_epoch": best["epoch"],
            "bad_epochs": best["bad_epochs"],
            "history": history,
        }

    def _write_history(self, history: list[dict]) -> None:
        path = self.run_dir / "metrics.jsonl"
        tmp = path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in history))
        tmp.replace(path)

    def train(self) -> list[dict]:
        """Runs (or resumes) training; leaves the best validated weights in the model and their
        epoch in ``best_epoch``."""
        cfg = self.config
        ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        history: list[dict] = []
        best = {
            "model": self.model.state_dict(),
            "score": -float("inf"),
            "epoch": -1,
            "bad_epochs": 0,
        }
        start = 0
        if ckpt_path.exists():
            state = load_checkpoint(ckpt_path)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            history, start = state["history"], state["epoch"] + 1
            best = {
                "model": state["best_model"],
                "score": state["best_score"],
                "epoch": state["best_epoch"],
                "bad_epochs": state["bad_epochs"],
            }
        step = start * len(self.batcher)
        for epoch in range(start, cfg.epochs):
            if best["bad_epochs"] >= cfg.patience:
                break
            generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            began, losses = time.perf_counter(), []
            bar = tqdm(
                self.batcher.epoch(generator),
                total=len(self.batcher),
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                disable=not cfg.progress,
                leave=False,
                mininterval=1.0,
            )
            for batch in bar:
                losses.append(self.train_step(batch, generator))
                step += 1
                bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
                if self.on_step is not None:
                    self.on_step(step)
            row = {
                "epoch": epoch + 1,
                "step": step,
                "loss": float(np.mean(losses)),
                "seconds": time.perf_counter() - began,
            }
            if len(self.data.valid[0]) == 0:
                # No validation set: the latest weights are the ones kept.
                best = self._best(epoch, score=0.0)
            elif (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                valid = self.validate()
                row.update({f"valid_{k}": v for k, v in valid.items() if k != "score"})
                if valid["score"] > best["score"]:
                    best = self._best(epoch, valid["score"])
                else:
                    best["bad_epochs"] += 1
            history.append(row)
            save_checkpoint(self._state(epoch, best, history), ckpt_path)
            self._write_history(history)
            if cfg.progress:
                shown = {k: round(v, 4) for k, v in row.items() if k.startswith(("loss", "valid"))}
                tqdm.write(f"epoch {epoch + 1}: {shown}")
        self.model.load_state_dict(best["model"])
        self.best_epoch = best["epoch"]
        return history
