"""Degree-aware tile schedules and per-graph caches for the Triton aggregation kernels.

A CSR's non-empty rows become *work items* ``(row, edge_start, edge_end, slot)``:

- light rows (degree <= ``heavy_threshold``) are whole items, sorted by degree (degree bins) and
  packed several per program until a program holds about ``pack_edges`` edges;
- heavy rows are split into chunks of ``chunk_edges`` edges, one chunk per program; each chunk
  writes its raw partial result to workspace ``slot``, and a second pass reduces every heavy
  row's chunks in a fixed order (deterministic, no atomics); a row that would need more than
  ``max_chunks`` chunks gets longer ones, which keeps that second pass short.

Programs are ordered longest first (the heavy chunks, then light rows by decreasing degree):
the GPU hands out blocks roughly in program order, so the launch ends on short programs
instead of waiting on a long one started last. The order changes no result: each light row is
summed by one program in edge order, and heavy rows combine their chunks by slot.

Built once per graph and parameter set, and cached on the graph's index tensor together with
its transpose (for the backward pass) and its edge row ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.weak import WeakIdKeyDictionary

from gnnrec.kernels.csr import edge_rows, same_structure, transpose_csr


@dataclass(frozen=True)
class ScheduleParams:
    """Tile-schedule knobs; tiny values let tests reach the split and packed paths.
    ``max_chunks``: a heavy row gets at most this many chunks (longer ones when its degree
    needs it), so the combine pass, which reads a row's chunks one after another, stays short
    even for a row of millions of edges."""

    heavy_threshold: int = 2048
    chunk_edges: int = 1024
    pack_edges: int = 256
    max_chunks: int = 256

    def __post_init__(self) -> None:
        knobs = (self.heavy_threshold, self.chunk_edges, self.pack_edges, self.max_chunks)
        if min(knobs) < 1:
            raise ValueError("schedule parameters must be positive")


@dataclass
class TileSchedule:
    """``program_ptr`` ``[P + 1]`` into the work items ``item_*`` ``[W]`` (int64); heavy rows
    ``heavy_row`` ``[H]`` with their chunk slots ``chunk_ptr`` ``[H + 1]``."""

    program_ptr: torch.Tensor
    item_row: torch.Tensor
    item_start: torch.Tensor
    item_end: torch.Tensor
    item_slot: torch.Tensor
    heavy_row: torch.Tensor
    chunk_ptr: torch.Tensor

    @property
    def num_programs(self) -> int:
        return self.program_ptr.numel() - 1

    @property
    def num_slots(self) -> int:
        return int(self.chunk_ptr[-1])


def build_schedule(indptr: torch.Tensor, params: ScheduleParams) -> TileSchedule:
    """The work items and program boundaries of a CSR (see the module docstring), built with
    tensor ops on the CSR's device: a sampled subgraph gets its schedule on the GPU, with no
    host round trip."""
    device = indptr.device
    indptr = indptr.long()
    degree = indptr[1:] - indptr[:-1]
    light = torch.nonzero((degree > 0) & (degree <= params.heavy_threshold)).flatten()
    light = light[torch.argsort(degree[light], descending=True, stable=True)]
    light_deg = degree[light]
    # Pack light rows: a new program starts whenever the running edge count crosses a multiple
    # of pack_edges (a row bigger than pack_edges gets a program of its own).
    ends = torch.cumsum(light_deg, 0)
    pack = torch.div(ends - light_deg, params.pack_edges, rounding_mode="floor")
    new_program = torch.ones_like(pack, dtype=torch.bool)
    new_program[1:] = pack[1:] != pack[:-1]
    light_starts = torch.nonzero(new_program).flatten()

    heavy = torch.nonzero(degree > params.heavy_threshold).flatten()
    heavy_deg = degree[heavy]
    # chunk_edges, or longer for a row that would need more than max_chunks chunks
    size = torch.maximum(
        torch.full_like(heavy_deg, params.chunk_edges),
        torch.div(heavy_deg + params.max_chunks - 1, params.max_chunks, rounding_mode="floor"),
    )
    chunks = torch.div(heavy_deg + size - 1, size, rounding_mode="floor")
    chunk_ptr = torch.zeros(heavy.numel() + 1, dtype=torch.int64, device=device)
    chunk_ptr[1:] = torch.cumsum(chunks, 0)
    chunk_row = torch.repeat_interleave(heavy, chunks)
    chunk_index = torch.arange(chunk_row.numel(), device=device) - torch.repeat_interleave(
        chunk_ptr[:-1], chunks
    )
    chunk_size = torch.repeat_interleave(size, chunks)
    chunk_start = indptr[chunk_row] + chunk_index * chunk_size
    chunk_end = torch.minimum(chunk_start + chunk_size, indptr[chunk_row + 1])

    # Longest programs first: every heavy chunk, then the light packs (largest rows first).
    num_chunks = chunk_row.numel()
    chunk_ids = torch.arange(num_chunks, device=device)
    item_row = torch.cat([chunk_row, light])
    item_start = torch.cat([chunk_start, indptr[light]])
    item_end = torch.cat([chunk_end, indptr[light + 1]])
    item_slot = torch.cat([chunk_ids, torch.full_like(light, -1)])
    total = torch.tensor([num_chunks + light.numel()], device=device)
    program_ptr = torch.cat([chunk_ids, num_chunks + light_starts, total])
    return TileSchedule(program_ptr, item_row, item_start, item_end, item_slot, heavy, chunk_ptr)


@dataclass
class GraphPlan:
    """What the kernels derive once from a CSR: tile schedules, edge row ids and the transpose.

    It holds only derived tensors (never the CSR's own), so caching it weakly on the CSR's
    ``indices`` tensor lets the entry go when the graph does.
    """

    num_rows: int
    num_cols: int
    schedules: dict[ScheduleParams, TileSchedule] = field(default_factory=dict)
    row_ids: torch.Tensor | None = None
    edge_ids: torch.Tensor | None = None
    transposed: TransposedCSR | None = None
    symmetric: bool | None = None

    def schedule(self, indptr: torch.Tensor, params: ScheduleParams) -> TileSchedule:
        if params not in self.schedules:
            self.schedules[params] = build_schedule(indptr, params)
        return self.schedules[params]

    def edge_rows(self, indptr: torch.Tensor) -> torch.Tensor:
        """Row of every edge, int64 ``[E]``."""
        if self.row_ids is None:
            self.row_ids = edge_rows(indptr)
        return self.row_ids

    def edges(self, indices: torch.Tensor) -> torch.Tensor:
        """``arange(E)`` in ``indices``' dtype: as the column indices of a CSR over the edges,
        it makes the aggregation kernels sum per-edge values over each row."""
        if self.edge_ids is None:
            self.edge_ids = torch.arange(
                indices.numel(), dtype=indices.dtype, device=indices.device
            )
        return self.edge_ids

    def transpose(self, indptr: torch.Tensor, indices: torch.Tensor) -> TransposedCSR:
        """``A^T`` as a CSR, with ``perm``: edge ``k`` of ``A^T`` is edge ``perm[k]`` of ``A``."""
        if self.transposed is None:
            t_indptr, t_rows, perm = transpose_csr(indptr, indices, self.num_cols)
            self.transposed = TransposedCSR(
                t_indptr, t_rows.to(indices.dtype), perm, GraphPlan(self.num_cols, self.num_rows)
            )
        return self.transposed

    def is_symmetric(self, indptr: torch.Tensor, indices: torch.Tensor) -> bool:
        """Structural symmetry (with multiplicities): ``A^T`` has ``A``'s structure."""
        if self.symmetric is None:
            t = self.transpose(indptr, indices) if self.num_rows == self.num_cols else None
            self.symmetric = t is not None and same_structure(t.indptr, t.indices, indptr, indices)
        return self.symmetric


@dataclass
class TransposedCSR:
    indptr: torch.Tensor
    indices: torch.Tensor
    perm: torch.Tensor
    plan: GraphPlan


_PLANS: WeakIdKeyDictionary = WeakIdKeyDictionary()


def plan_for(indptr: torch.Tensor, indices: torch.Tensor, num_cols: int) -> GraphPlan:
    """The cached plan of a CSR, keyed by the identity of its ``indices`` tensor (the entry goes
    when the tensor does). Changing a graph's tensors in place after first use is not
    supported: build new tensors instead."""
    num_rows = indptr.numel() - 1
    plan = _PLANS.get(indices)
    if plan is None or (plan.num_rows, plan.num_cols) != (num_rows, num_cols):
        plan = GraphPlan(num_rows, num_cols)
        _PLANS[indices] = plan
    return plan
