"""One rank of a two-process sharded-table run (a script: tests/test_sharded_tables.py starts
two of them): three steps of lookups, then its facts saved to OUT/rank<R>.pt.

    python sharded_tables_worker.py RANK PORT OUT
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from gnnrec.train.sharded_table import ShardedTable

ROWS, DIM, STEPS = 23, 5, 3


def lookups(rank: int, step: int) -> list[torch.Tensor]:
    """Two lookups per step, different on each rank, with repeats and shared ids."""
    g = torch.Generator().manual_seed(100 * step + rank)
    return [torch.randint(0, ROWS, (9,), generator=g), torch.randint(0, 6, (4,), generator=g)]


def loss(rows: torch.Tensor, step: int, k: int) -> torch.Tensor:
    target = torch.linspace(-1, 1, rows.numel()).view_as(rows) * (step + k + 1)
    return ((rows - target) ** 2).sum()


def start() -> torch.Tensor:
    return torch.randn(ROWS, DIM, generator=torch.Generator().manual_seed(7))


def run(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    table = ShardedTable.of(start(), lr=0.3)
    for step in range(STEPS):
        table.zero_grad()
        for k, ids in enumerate(lookups(rank, step)):
            loss(table(ids), step, k).backward()  # the table averages over ranks, as DDP
        table.step()
    torch.save(
        {"shard": table.shard_state(), "bytes_sent": table.bytes_sent},
        f"{out}/rank{rank}.pt",
    )
    dist.destroy_process_group()


if __name__ == "__main__":
    run(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
