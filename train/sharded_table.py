"""An ID table (embeddings or biases) sharded by rows over the processes of the default
``torch.distributed`` group, trained with row-wise Adagrad.

Row ``r`` of an ``[N, H]`` table lives on rank ``r % W`` as local row ``r // W`` (modulo
sharding spreads the hot, low ids), with its Adagrad state: no process holds the whole table,
and no collective ever moves it. A lookup of ids ``[n]`` (a collective: every rank makes the
same lookups in the same order) sends the distinct ids to their owners and gets their rows back
(``all_to_all_single`` twice), as one leaf ``[u, H]`` that autograd fills with the rows'
gradients; :meth:`ShardedTable.step` sends those gradients back to the owners (once more), which
average them over the W ranks, as DDP averages dense gradients, sum them per row and take one
:func:`~gnnrec.train.row_optimizer.rowwise_adagrad_` step. Bytes moved per step: the batch's
distinct rows there and back (``H`` floats each) plus their ids, counted in ``bytes_sent``.

With W = 1 the same code runs without collectives, so one process and W workers compute the
same update. For validation, :meth:`gather_` assembles the whole table on rank 0 only
(transient: the embeddings there are as large). Checkpoints hold each rank's own rows
(:meth:`ShardedTable.shard_state`, one file a rank); :func:`rows_of_rank` cuts rows saved by any
number of ranks into the shard of any rank of any world, so a run resumes on another W.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from gnnrec.train.row_optimizer import rowwise_adagrad_


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rows_of_rank(parts: Sequence[torch.Tensor], rank: int, world: int) -> torch.Tensor:
    """Rows ``r = rank, rank + world, ...`` of a table saved as ``parts`` by ``S = len(parts)``
    ranks (part ``s`` holds rows ``s, s + S, ...``); ``world = 1`` assembles the whole table.
    Reads only those rows (parts may be memory-mapped)."""
    saved = len(parts)
    num_rows = sum(part.shape[0] for part in parts)
    rows = torch.arange(min(rank, num_rows), num_rows, world)
    out = parts[0].new_empty((len(rows), *parts[0].shape[1:]))
    owner = rows % saved
    for s, part in enumerate(parts):
        mine = owner == s
        out[mine] = part[rows[mine] // saved]
    return out


DRAW_BLOCK = 1 << 16  # rows drawn from one generator by drawn_rows


def drawn_rows(
    num_rows: int,
    dim: int,
    std: float,
    key: Sequence[int],
    rank: int,
    world: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Rows ``r = rank, rank + world, ...`` of an ``[num_rows, dim]`` table of N(0, std^2)
    entries (zeros for ``std = 0``), drawn :data:`DRAW_BLOCK` rows at a time, block ``b`` from
    a generator seeded by ``(*key, b)``: every world draws the same table, and none holds more
    of it than its rows and one block."""
    own = len(range(min(rank, num_rows), num_rows, world))
    out = torch.zeros(own, dim, device=device)
    if std == 0:
        return out
    for first in range(0, num_rows, DRAW_BLOCK):
        last = min(first + DRAW_BLOCK, num_rows)
        seed = np.random.SeedSequence([*key, first // DRAW_BLOCK]).generate_state(1)[0]
        block = torch.randn(last - first, dim, generator=torch.Generator().manual_seed(int(seed)))
        start = first + (rank - first) % world  # this rank's first row in the block
        mine = block[start - first :: world]
        at = (start - rank) // world
        out[at : at + len(mine)] = mine.to(out.device) * std
    return out


class ShardedTable(nn.Module):
    """This rank's rows of an ``[N, H]`` table: ``shard`` ``[ceil((N - rank) / W), H]`` and the
    row-wise Adagrad state ``state`` ``[rows]`` (neither is a parameter: DDP leaves them
    alone; checkpoints save them through :meth:`shard_state`)."""

    def __init__(self, shard: torch.Tensor, num_rows: int, lr: float, eps: float = 1e-8):
        """``shard`` ``[rows, H]``: this rank's rows ``rank, rank + W, ...`` of the table."""
        super().__init__()
        self.rank, self.world = _world()
        self.num_rows, self.dim = num_rows, shard.shape[1]
        self.lr, self.eps = lr, eps
        self.shard = shard
        self.state = torch.zeros(self.shard.shape[0], dtype=torch.float32, device=shard.device)
        self.full: torch.Tensor | None = None  # the gathered table, on rank 0 after gather_()
        self.bytes_sent = 0
        self._lookups: list[
            tuple[torch.Tensor, torch.Tensor, list[int], list[int], torch.Tensor]
        ] = []

    @classmethod
    def of(cls, weight: torch.Tensor, lr: float) -> ShardedTable:
        """This rank's rows of the whole table ``weight`` ``[N, H]`` (copied)."""
        rank, world = _world()
        return cls(weight.detach()[rank::world].clone(), weight.shape[0], lr)

    def _exchange(self, send: torch.Tensor, send_counts: list[int], recv_counts: list[int]):
        """``all_to_all_single``: ``send`` rows grouped by destination -> rows by source."""
        if self.world == 1:
            return send
        out = send.new_empty((sum(recv_counts), *send.shape[1:]))
        dist.all_to_all_single(out, send.contiguous(), recv_counts, send_counts)
        own = send_counts[self.rank] * (send[0].numel() if send.numel() else 0)
        self.bytes_sent += (send.numel() - own) * send.element_size()
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``[n, H]`` of ``ids`` ``[n]`` (the gathered table on rank 0 after
        :meth:`gather_`; else a collective lookup)."""
        if self.full is not None:
            return self.full[ids]
        distinct, inverse = torch.unique(ids, return_inverse=True)
        owner = distinct % self.world
        order = torch.argsort(owner, stable=True)
        wanted = distinct[order]  # grouped by owner
        send_counts = torch.bincount(owner, minlength=self.world)
        recv_counts = self._exchange(send_counts, [1] * self.world, [1] * self.world)
        send_counts, recv_counts = send_counts.tolist(), recv_counts.tolist()
        asked = self._exchange(wanted, send_counts, recv_counts)  # ids this rank owns
        rows = self._exchange(self.shard[asked // self.world], recv_counts, send_counts)
        leaf = torch.empty_like(rows)
        leaf[order] = rows  # back to the order of ``distinct``
        if not torch.is_grad_enabled():
            return leaf[inverse]
        leaf.requires_grad_()
        self._lookups.append((leaf, order, send_counts, recv_counts, asked))
        return leaf[inverse]

    @torch.no_grad()
    def step(self) -> None:
        """One row-wise Adagrad step on the rows of this step's lookups (a collective)."""
        rows, grads = [], []
        for leaf, order, send_counts, recv_counts, asked in self._lookups:
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            rows.append(asked // self.world)
            grads.append(self._exchange(grad[order], send_counts, recv_counts))
        self._lookups.clear()
        if not rows:
            return
        local, index = torch.unique(torch.cat(rows), return_inverse=True)
        summed = torch.zeros(local.numel(), self.dim, dtype=self.shard.dtype, device=local.device)
        summed.index_add_(0, index, torch.cat(grads) / self.world)
        rowwise_adagrad_(self.shard, self.state, local, summed, self.lr, self.eps)

    def zero_grad(self) -> None:
        self._lookups.clear()

    def _gather(self, local: torch.Tensor) -> torch.Tensor | None:
        """``local`` ``[rows, ...]`` of every rank interleaved back into table order, on rank 0
        (None elsewhere)."""
        if self.world == 1:
            return local.clone()
        per_rank = -(-self.num_rows // self.world)
        padded = local.new_zeros((per_rank, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world)] if self.rank == 0 else None
        dist.gather(padded, parts, dst=0)
        if self.rank != 0:
            return None
        whole = local.new_empty((self.num_rows, *local.shape[1:]))
        for r, part in enumerate(parts):
            count = len(range(r, self.num_rows, self.world))
            whole[r :: self.world] = part[:count]
        return whole

    def gather_(self) -> None:
        """Assembles the whole table on rank 0 (``full``; a collective)."""
        self.full = self._gather(self.shard)

    def release_(self) -> None:
        self.full = None

    def shard_state(self) -> dict[str, torch.Tensor]:
        """This rank's ``{"weight": shard, "state": state}`` (references, for a checkpoint)."""
        return {"weight": self.shard, "state": self.state}

    def load_(self, parts: Sequence[dict[str, torch.Tensor]]) -> None:
        """This rank's rows of the :meth:`shard_state` of every rank of a saved run (any W)."""
        for key, mine in self.shard_state().items():
            mine.copy_(rows_of_rank([part[key] for part in parts], self.rank, self.world))


def shard_tables(
    model: nn.Module, lr: float, seed: int, device: torch.device | str
) -> dict[str, ShardedTable]:
    """Replaces each trainable table of ``model.embedding_tables()`` by its
    :class:`ShardedTable`, this rank's rows drawn by :func:`drawn_rows` with the model's
    ``table_std`` and key ``(seed, table index)`` on ``device`` (the model's own, dense table
    is not read: it may be an undrawn placeholder); ``{module name: table}``."""
    names = {id(module): name for name, module in model.named_modules()}
    rank, world = _world()
    tables = {}
    for index, table in enumerate(model.embedding_tables()):
        if table.weight.requires_grad:
            name = names[id(table)]
            num_rows, dim = table.weight.shape
            std = model.table_std(table)
            rows = drawn_rows(num_rows, dim, std, (seed, index), rank, world, device)
            tables[name] = ShardedTable(rows, num_rows, lr)
            model.set_submodule(name, tables[name])
    return tables


def unshard_tables(model: nn.Module, tables: dict[str, ShardedTable]) -> None:
    """Puts dense ``nn.Embedding`` tables back in place of ``tables`` (one process's: whole)."""
    for name, table in tables.items():
        if table.world != 1:
            raise ValueError(f"{name}: a table sharded over {table.world} ranks is not whole")
        model.set_submodule(name, nn.Embedding.from_pretrained(table.shard, freeze=False))
