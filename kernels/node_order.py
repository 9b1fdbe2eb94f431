"""Node orders that put a row's neighbors near each other in memory, and the relabelled CSR.

A gather kernel reads ``x[j]`` for every edge ``(i, j)``; with columns in random order almost
every read misses the L2 cache. Relabelling the nodes once, so that rows processed together
share their sources, turns misses into hits. Two orders:

- ``degree``: nodes by decreasing degree (hubs, which most rows read, packed together);
- ``rcm``: reverse Cuthill-McKee (Cuthill & McKee, 1969; George, 1971): breadth-first from a
  low-degree node, each level's new nodes in order of their parent's position, then by degree;
  the result reversed. It shrinks the bandwidth ``max |i - j|`` of a sparse matrix.

Both are tensor operations (no SciPy), one breadth-first level at a time; nodes no search from
the first start reaches follow in decreasing degree. ``perm[new] = old``; aggregating over the
relabelled graph gives the same result up to the permutation (tested).
"""

from __future__ import annotations

import torch

from gnnrec.kernels.csr import edge_rows

ORDERS = ("degree", "rcm")


def degree_order(indptr: torch.Tensor) -> torch.Tensor:
    """``perm [N]``: nodes by decreasing degree (stable)."""
    return torch.argsort(indptr.diff(), descending=True, stable=True)


def cuthill_mckee_order(
    indptr: torch.Tensor, indices: torch.Tensor, reverse: bool = True
) -> torch.Tensor:
    """``perm [N]``: (reverse) Cuthill-McKee from the lowest-degree non-isolated node of a
    square CSR (symmetric, or read as one); unreached nodes follow by decreasing degree."""
    n = indptr.numel() - 1
    device = indptr.device
    degree = indptr.diff()
    order = torch.empty(0, dtype=torch.int64, device=device)
    seen = torch.zeros(n, dtype=torch.bool, device=device)
    candidates = torch.nonzero(degree > 0).flatten()
    if candidates.numel():
        start = candidates[torch.argmin(degree[candidates])].view(1)
        frontier, seen[start] = start, True
        while frontier.numel():
            order = torch.cat([order, frontier])
            counts = degree[frontier]
            parent = torch.repeat_interleave(torch.arange(frontier.numel(), device=device), counts)
            offset = torch.arange(parent.numel(), device=device) - torch.repeat_interleave(
                torch.cumsum(counts, 0) - counts, counts
            )
            neighbor = indices[indptr[frontier][parent] + offset].long()
            fresh = ~seen[neighbor]
            neighbor, parent = neighbor[fresh], parent[fresh]
            if not neighbor.numel():
                break
            # by parent position, then degree, then id: each new node once, at its first parent
            key = torch.argsort(neighbor, stable=True)
            key = key[torch.argsort(degree[neighbor[key]], stable=True)]
            key = key[torch.argsort(parent[key], stable=True)]
            ranked = neighbor[key]
            uniq, inverse = torch.unique(ranked, return_inverse=True)
            position = torch.full((uniq.numel(),), ranked.numel(), device=device)
            position.scatter_reduce_(
                0, inverse, torch.arange(ranked.numel(), device=device), "amin"
            )
            frontier = ranked[torch.sort(position).values]  # first appearances, in order
            seen[frontier] = True
    rest = torch.nonzero(~seen).flatten()
    rest = rest[torch.argsort(degree[rest], descending=True, stable=True)]
    order = torch.cat([order, rest])
    return order.flip(0) if reverse else order


def node_order(indptr: torch.Tensor, indices: torch.Tensor, kind: str) -> torch.Tensor:
    """``perm`` of ``kind`` in :data:`ORDERS`."""
    if kind == "degree":
        return degree_order(indptr)
    if kind == "rcm":
        return cuthill_mckee_order(indptr, indices)
    raise ValueError(f"unknown node order {kind!r}; choose one of {ORDERS}")


def permute_csr(
    indptr: torch.Tensor, indices: torch.Tensor, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The square CSR with node ``perm[k]`` renamed ``k``: row ``k`` is old row ``perm[k]``, its
    columns renamed and sorted. ``indices`` keep their dtype."""
    n = indptr.numel() - 1
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(n, device=perm.device)
    degree = indptr.diff()[perm]
    new_indptr = torch.zeros_like(indptr)
    new_indptr[1:] = torch.cumsum(degree, 0)
    rows = rank[edge_rows(indptr)]
    cols = rank[indices.long()]
    order = torch.argsort(rows * n + cols, stable=True)
    return new_indptr, cols[order].to(indices.dtype)
