"""Synthetic graphs for kernel benchmarks, generated on the target device.

Both endpoints of every edge are drawn from power laws ``p_v ∝ (v + 1)^-alpha`` over shuffled
node ids: ``alpha = 0`` is uniform, larger ``alpha`` concentrates edges on hub rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GraphSpec:
    name: str
    num_nodes: int
    num_edges: int
    row_alpha: float
    col_alpha: float


# Shaped like ogbn-products (2.45M nodes, 61.8M nnz); far more skewed hub rows; uniform (in the
# order of the goals: a benchmark cut short keeps the first ones).
FULL_SIZE = [
    GraphSpec("products-like", 2_449_029, 61_859_140, 0.75, 0.5),
    GraphSpec("very-skewed", 2_449_029, 61_859_140, 1.05, 0.5),
    GraphSpec("uniform", 2_449_029, 61_859_140, 0.0, 0.0),
]
TINY = [GraphSpec("tiny-skewed", 48, 240, 1.0, 0.5), GraphSpec("tiny-uniform", 48, 240, 0.0, 0.0)]


def _power_law(
    num_nodes: int, count: int, alpha: float, g: torch.Generator, device: torch.device
) -> torch.Tensor:
    if alpha == 0:
        return torch.randint(num_nodes, (count,), generator=g, device=device)
    weights = (torch.arange(num_nodes, device=device, dtype=torch.float64) + 1) ** -alpha
    rank = torch.multinomial(weights.float(), count, replacement=True, generator=g)
    shuffle = torch.randperm(num_nodes, generator=g, device=device)
    return shuffle[rank]


def synthetic_csr(spec: GraphSpec, device: torch.device, seed: int = 0):
    """``(indptr int64 [N+1], indices int32 [E])`` sorted by row, duplicates kept."""
    g = torch.Generator(device=device).manual_seed(seed)
    rows = _power_law(spec.num_nodes, spec.num_edges, spec.row_alpha, g, device)
    cols = _power_law(spec.num_nodes, spec.num_edges, spec.col_alpha, g, device)
    order = torch.argsort(rows * spec.num_nodes + cols)
    rows, cols = rows[order], cols[order]
    indptr = torch.zeros(spec.num_nodes + 1, dtype=torch.int64, device=device)
    indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=spec.num_nodes), 0)
    return indptr, cols.to(torch.int32)
