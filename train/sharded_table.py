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

from gnnrec.train.feature_store import rows_on
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


class HotRows:
    """The hottest local rows of a host-resident shard, on the device: ``slot`` ``[rows]``
    (cache position of each local row, -1 if not cached), ``rows`` ``[C, H]`` and their
    row-wise state ``[C]``; updates land here and :meth:`write_back_` copies them home."""

    def __init__(self, hot: torch.Tensor, num_rows: int, device: torch.device):
        self.hot = hot.to(device)
        self.slot = torch.full((num_rows,), -1, dtype=torch.int64, device=device)
        self.slot[self.hot] = torch.arange(self.hot.numel(), device=device)
        self.rows = torch.empty(0, device=device)
        self.state = torch.empty(0, device=device)
        self.dirty = False

    def fill_(self, rows: torch.Tensor, state: torch.Tensor) -> None:
        """Reads the cached rows and their state from the shard ``rows``, ``state``."""
        self.rows = rows_on(rows, self.hot, self.hot.device)  # a copy: rows are gathered
        self.state = state[self.hot.to(state.device)].to(self.hot.device)
        self.dirty = False

    def write_back_(self, rows: torch.Tensor, state: torch.Tensor) -> None:
        """Copies updated cached rows and state back into the shard."""
        if self.dirty:
            home = self.hot.to(rows.device)
            rows[home] = self.rows.to(rows.device)
            state[home] = self.state.to(state.device)
            self.dirty = False


class ShardedTable(nn.Module):
    """This rank's rows of an ``[N, H]`` table: ``shard`` ``[ceil((N - rank) / W), H]`` and the
    row-wise Adagrad state ``state`` ``[rows]`` (neither is a parameter: DDP leaves them
    alone; checkpoints save them through :meth:`shard_state`)."""

    def __init__(
        self,
        shard: torch.Tensor,
        num_rows: int,
        lr: float,
        eps: float = 1e-8,
        *,
        device: torch.device | str | None = None,
        hot: torch.Tensor | None = None,
    ):
        """``shard`` ``[rows, H]``: this rank's rows ``rank, rank + W, ...`` of the table, kept
        where it is: on ``device`` (where lookups return their rows; default: the shard's), or
        on the host (pinned: a table larger than the device) with the local rows ``hot``
        cached on ``device``, their reads and updates served there."""
        super().__init__()
        self.rank, self.world = _world()
        self.num_rows, self.dim = num_rows, shard.shape[1]
        self.lr, self.eps = lr, eps
        self.frozen: torch.Tensor | None = None  # rows that take no step (freeze_rows_)
        self.device = shard.device if device is None else torch.device(device)
        self._rows = shard
        self._state = torch.zeros(shard.shape[0], dtype=torch.float32, device=shard.device)
        self.cache: HotRows | None = None
        if hot is not None and hot.numel():
            self.cache = HotRows(hot, shard.shape[0], self.device)
            self.cache.fill_(self._rows, self._state)
        self.full: torch.Tensor | None = None  # the gathered table, on rank 0 after gather_()
        self.bytes_sent = 0
        self._lookups: list[
            tuple[torch.Tensor, torch.Tensor, list[int], list[int], torch.Tensor]
        ] = []

    @property
    def shard(self) -> torch.Tensor:
        """This rank's rows ``[rows, H]``, current (the cached rows written back first)."""
        if self.cache is not None:
            self.cache.write_back_(self._rows, self._state)
        return self._rows

    @property
    def state(self) -> torch.Tensor:
        """The row-wise Adagrad state ``[rows]`` of this rank's rows, current."""
        if self.cache is not None:
            self.cache.write_back_(self._rows, self._state)
        return self._state

    def assign_(self, weight: torch.Tensor, state: torch.Tensor | None = None) -> None:
        """Sets this rank's rows (and their state) to ``weight`` (``state``), cache included."""
        self.shard.copy_(weight)
        if state is not None:
            self.state.copy_(state)
        if self.cache is not None:
            self.cache.fill_(self._rows, self._state)

    def _read(self, local: torch.Tensor) -> torch.Tensor:
        """Local rows ``local`` ``[n]`` (on ``device``) -> ``[n, H]`` on ``device``."""
        if self.cache is None:
            return rows_on(self._rows, local, self.device)
        position = self.cache.slot[local]
        hit = position >= 0
        out = torch.empty(local.numel(), self.dim, dtype=self._rows.dtype, device=self.device)
        out[hit] = self.cache.rows[position[hit]]
        out[~hit] = rows_on(self._rows, local[~hit], self.device)
        return out

    def _update(self, local: torch.Tensor, summed: torch.Tensor) -> None:
        """One row-wise Adagrad step of the distinct local rows ``local`` with their summed
        gradients: cached rows on the device, the others where the shard is."""
        if self.cache is None:
            home = self._rows.device
            rowwise_adagrad_(
                self._rows, self._state, local.to(home), summed.to(home), self.lr, self.eps
            )
            return
        position = self.cache.slot[local]
        hit = position >= 0
        cache = self.cache
        rowwise_adagrad_(cache.rows, cache.state, position[hit], summed[hit], self.lr, self.eps)
        cache.dirty = cache.dirty or bool(hit.any())
        home, miss = self._rows.device, ~hit
        rowwise_adagrad_(
            self._rows, self._state, local[miss].to(home), summed[miss].to(home), self.lr, self.eps
        )

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
        if self.full is not None:  # (on the host for a host-resident table)
            return rows_on(self.full, ids, self.device)
        distinct, inverse = self._distinct(ids)
        if self.world == 1:  # every row is this rank's: no grouping, no exchange
            order, send_counts, recv_counts, asked = None, [distinct.numel()], [], distinct
            leaf = self._read(distinct)
        else:
            owner = distinct % self.world
            order = torch.argsort(owner, stable=True)
            wanted = distinct[order]  # grouped by owner
            send_counts = torch.bincount(owner, minlength=self.world)
            recv_counts = self._exchange(send_counts, [1] * self.world, [1] * self.world)
            send_counts, recv_counts = send_counts.tolist(), recv_counts.tolist()
            asked = self._exchange(wanted, send_counts, recv_counts)  # ids this rank owns
            rows = self._exchange(self._read(asked // self.world), recv_counts, send_counts)
            leaf = torch.empty_like(rows)
            leaf[order] = rows  # back to the order of ``distinct``
        if torch.is_grad_enabled():
            leaf.requires_grad_()
            self._lookups.append((leaf, order, send_counts, recv_counts, asked))
        return leaf if inverse is None else leaf[inverse]

    def _distinct(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(distinct ids, inverse)`` with ``ids = distinct[inverse]``: ``(ids, None)`` when no
        id repeats (a sampled subgraph's nodes, a range of nodes), told by a bitmap of the
        table's rows instead of a sort; else ``torch.unique``'s."""
        if ids.numel() * 16 >= self.num_rows:  # the bitmap costs O(N): for large lookups
            seen = torch.zeros(self.num_rows, dtype=torch.bool, device=ids.device)
            seen[ids] = True
            if int(seen.sum()) == ids.numel():
                return ids, None
        return torch.unique(ids, return_inverse=True)

    @torch.no_grad()
    def step(self) -> None:
        """One row-wise Adagrad step on the rows of this step's lookups (a collective)."""
        rows, grads = [], []
        for leaf, order, send_counts, recv_counts, asked in self._lookups:
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            rows.append(asked // self.world)
            grads.append(
                grad if order is None else self._exchange(grad[order], send_counts, recv_counts)
            )
        self._lookups.clear()
        if not rows:
            return
        local, summed = self._summed(rows, grads)
        if self.frozen is not None:
            moving = ~self.frozen[local.to(self.frozen.device)].to(local.device)
            local, summed = local[moving], summed[moving]
        self._update(local, summed / self.world if self.world > 1 else summed)

    def freeze_rows_(self, trainable: torch.Tensor) -> None:
        """Only the rows where ``trainable`` ``[num_rows]`` (bool, the whole table's) is True
        take steps from now on."""
        mine = torch.as_tensor(trainable, dtype=torch.bool)[self.rank :: self.world]
        self.frozen = (~mine).to(self.device)

    def _summed(
        self, rows: list[torch.Tensor], grads: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct local rows of the lookups ``rows`` (each ``[n_k]``) and their summed
        gradients (``grads``, each ``[n_k, H]``). When the first lookup's rows are distinct
        (a sampled subgraph's nodes; the others, say the batch's seeds, mostly among them),
        the others are added into its gradient through a slot map of the shard's rows, without
        a sort; else ``torch.unique``'s."""
        first = rows[0]
        if first.numel() * 16 >= self._rows.shape[0]:
            slot = torch.full((self._rows.shape[0],), -1, dtype=torch.int64, device=first.device)
            slot[first] = torch.arange(first.numel(), device=first.device)
            if int((slot >= 0).sum()) == first.numel():  # the first lookup's rows are distinct
                local, summed = first, grads[0]
                for more, grad in zip(rows[1:], grads[1:]):
                    new = torch.unique(more[slot[more] < 0])
                    if new.numel():
                        slot[new] = torch.arange(
                            local.numel(), local.numel() + new.numel(), device=new.device
                        )
                        local = torch.cat([local, new])
                        summed = torch.cat([summed, summed.new_zeros(new.numel(), self.dim)])
                    summed.index_add_(0, slot[more], grad)  # (a gradient of this step: ours)
                return local, summed
        local, index = torch.unique(torch.cat(rows), return_inverse=True)
        summed = torch.zeros(local.numel(), self.dim, dtype=self._rows.dtype, device=local.device)
        summed.index_add_(0, index, torch.cat(grads))
        return local, summed

    def zero_grad(self) -> None:
        self._lookups.clear()

    def _gather(self, local: torch.Tensor) -> torch.Tensor | None:
        """``local`` ``[rows, ...]`` of every rank interleaved back into table order, on rank 0
        (None elsewhere); rank 0 receives one rank's rows at a time (the whole table and one
        part at its peak)."""
        if self.world == 1:
            return local.clone()
        per_rank = -(-self.num_rows // self.world)
        padded = local.new_zeros((per_rank, *local.shape[1:]))
        padded[: local.shape[0]] = local
        if self.rank != 0:
            dist.send(padded, dst=0)
            return None
        whole = local.new_empty((self.num_rows, *local.shape[1:]))
        whole[0 :: self.world] = local
        for r in range(1, self.world):
            dist.recv(padded, src=r)
            whole[r :: self.world] = padded[: len(range(r, self.num_rows, self.world))]
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
        weight, state = (
            rows_of_rank([part[key] for part in parts], self.rank, self.world)
            for key in ("weight", "state")
        )
        self.assign_(weight, state)


TABLE_PLACEMENTS = ("device", "host", "pinned")


def shard_tables(
    model: nn.Module,
    lr: float,
    seed: int,
    device: torch.device | str,
    placement: str = "device",
    cache_rows: int = 0,
    degree: torch.Tensor | None = None,
) -> dict[str, ShardedTable]:
    """Replaces each trainable table of ``model.embedding_tables()`` by its
    :class:`ShardedTable`, this rank's rows drawn by :func:`drawn_rows` with the model's
    ``table_std`` and key ``(seed, table index)`` (the model's own, dense table is not read:
    it may be an undrawn placeholder); ``{module name: table}``.

    ``placement``: the rows live on ``device``, or on the host (``pinned``: page-locked, read
    in place by a GPU) with this rank's ``cache_rows`` highest-``degree`` rows (``[N]``, e.g.
    the graph's: what sampling reaches most) cached on ``device``."""
    if placement not in TABLE_PLACEMENTS:
        raise ValueError(f"placement must be one of {TABLE_PLACEMENTS}, got {placement!r}")
    if cache_rows and degree is None:
        raise ValueError("a table cache chooses its rows by degree: pass degree")
    device = torch.device(device)
    home = device if placement == "device" else torch.device("cpu")
    names = {id(module): name for name, module in model.named_modules()}
    rank, world = _world()
    tables = {}
    for index, table in enumerate(model.embedding_tables()):
        if table.weight.requires_grad:
            name = names[id(table)]
            num_rows, dim = table.weight.shape
            std = model.table_std(table)
            rows = drawn_rows(num_rows, dim, std, (seed, index), rank, world, home)
            if placement == "pinned" and torch.cuda.is_available():
                rows = rows.pin_memory()
            hot = None
            if cache_rows and placement != "device":
                mine = degree[rank:num_rows:world].float()
                hot = torch.topk(mine, min(cache_rows, mine.numel())).indices
            tables[name] = ShardedTable(rows, num_rows, lr, device=device, hot=hot)
            model.set_submodule(name, tables[name])
    return tables


def unshard_tables(model: nn.Module, tables: dict[str, ShardedTable]) -> None:
    """Puts dense ``nn.Embedding`` tables back in place of ``tables`` (one process's: whole),
    on the device their lookups returned rows to (a host-resident table moves there)."""
    for name, table in tables.items():
        if table.world != 1:
            raise ValueError(f"{name}: a table sharded over {table.world} ranks is not whole")
        weight = table.shard.to(table.device)
        model.set_submodule(name, nn.Embedding.from_pretrained(weight, freeze=False))
