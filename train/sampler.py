"""Our neighbor sampler: per-layer fanouts, uniform without replacement, seeds first.

For seeds ``S`` and fanouts ``[k_1, ..., k_L]``: hop ``l`` takes, for every node first reached at
hop ``l - 1``, ``min(deg, k_l)`` distinct in-neighbors uniformly at random (all of them when
``deg <= k_l`` or ``k_l < 0``). Nodes are deduplicated and relabelled in order of first
appearance, so ``n_id[:batch_size]`` are the seeds. The output converts to a PyG ``Data`` with
``edge_index`` (local ``[source; target]``), ``n_id`` and ``batch_size``, as ``NeighborLoader``
gives.

Every step is a vectorised tensor operation on the sampling device: a CSR in GPU memory (and a
CUDA generator) samples, deduplicates and relabels on the GPU with the same code and the same
distribution as on the CPU. A CSR too large for the GPU stays in pinned host memory and the GPU
reads the rows it needs in place (:func:`gnnrec.kernels.gather.gather_rows`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from gnnrec.data.graph_store import CSR, INDEX_DTYPE_LIMIT


@dataclass
class SampledSubgraph:
    """A sampled subgraph in local ids: ``n_id`` ``[n]`` global ids (seeds first), the local CSR
    (rows are targets; over a weighted graph its ``values`` are the sampled edges' weights),
    ``seed_index`` ``[S]`` local id of each input seed, ``e_id`` ``[E_s]`` the position of each
    sampled edge in the sampled graph's CSR."""

    n_id: torch.Tensor
    csr: CSR
    batch_size: int
    seed_index: torch.Tensor
    num_sampled_nodes: list[int]
    num_sampled_edges: list[int]
    e_id: torch.Tensor

    @property
    def hops(self) -> tuple[int, ...]:
        """Nodes within hop ``0, 1, ..., K`` of the seeds: ``num_sampled_nodes`` summed."""
        return tuple(itertools.accumulate(self.num_sampled_nodes))

    def to_pyg(self):
        from torch_geometric.data import Data

        edge_index = torch.stack([self.csr.indices.long(), self.csr.row_ids()])
        data = Data(
            edge_index=edge_index,
            e_id=self.e_id,
            n_id=self.n_id,
            batch_size=self.batch_size,
            num_nodes=self.n_id.numel(),
            num_sampled_nodes=self.num_sampled_nodes,
            num_sampled_edges=self.num_sampled_edges,
        )
        if self.csr.values is not None:
            data.edge_weight = self.csr.values
        return data


def unique_in_order(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct values in order of first appearance, and each value's index among them."""
    device = values.device
    uniq, inverse = torch.unique(values, return_inverse=True)
    first = torch.full((uniq.numel(),), values.numel(), dtype=torch.int64, device=device)
    first.scatter_reduce_(0, inverse, torch.arange(values.numel(), device=device), "amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank.index_copy_(0, order, torch.arange(order.numel(), device=device))
    return uniq.index_select(0, order), rank.index_select(0, inverse)


Read = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def index_read(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src[index]`` with both on one device (``index_select``: twice as fast on the CPU as
    indexing)."""
    return src.index_select(0, index)


def pinned_read(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src[index]`` for ``src`` in pinned host memory and ``index`` on a GPU (zero-copy)."""
    from gnnrec.kernels.gather import gather_rows

    return gather_rows(src, index)


def _shuffled_offsets(degree: torch.Tensor, k: int, generator) -> torch.Tensor:
    """``[h, k]`` distinct offsets in ``[0, degree_r)`` per row: the first ``k`` of a random
    shuffle of each row (sorting ``sum(degree)`` random keys)."""
    device = degree.device
    segment = torch.repeat_interleave(torch.arange(degree.numel(), device=device), degree)
    keys = torch.rand(segment.numel(), generator=generator, dtype=torch.float64, device=device)
    order = torch.argsort(segment.to(torch.float64) + keys)  # shuffle within each row
    within = torch.arange(segment.numel(), device=device) - torch.repeat_interleave(
        torch.cumsum(degree, 0) - degree, degree
    )
    # After the shuffle, row r's edges still occupy the same slots; keep the first k.
    return within[order][within < k].view(-1, k)


def _rejected_offsets(degree: torch.Tensor, k: int, generator) -> torch.Tensor:
    """``[h, k]`` distinct offsets in ``[0, degree_r)`` per row: ``k`` uniform draws, redrawing
    repeats until none is left (``O(k)`` per row and round; few rounds when ``degree >> k``).
    The procedure treats every offset alike, so each ``k``-subset is equally likely."""
    device = degree.device
    bound = degree.to(torch.float64).unsqueeze(1).expand(-1, k)
    picks = (
        torch.rand(bound.shape, generator=generator, dtype=torch.float64, device=device) * bound
    ).long()
    while True:
        ordered, order = picks.sort(dim=1)
        repeat = torch.zeros_like(picks, dtype=torch.bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        if not bool(repeat.any()):
            return picks
        redraw = torch.zeros_like(repeat).scatter_(1, order, repeat)
        fresh = torch.rand(
            int(redraw.sum()), generator=generator, dtype=torch.float64, device=device
        )
        picks[redraw] = (fresh * bound[redraw]).long()


def sample_neighbors(
    csr: CSR,
    nodes: torch.Tensor,
    fanout: int,
    generator: torch.Generator | None = None,
    read: Read = index_read,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of ``nodes`` ``[n]``, up to ``fanout`` distinct neighbors uniformly at random.

    Returns ``(target_position [m], neighbor [m], edge [m])``: the position in ``nodes`` of
    each sampled edge's target, the neighbor's global id and the edge's position in ``csr``.
    Rows with ``fanout < deg <= 4 fanout`` shuffle their neighbors; rows with
    ``deg > 4 fanout`` (hubs) draw offsets and redraw repeats, so a hub costs ``O(fanout)``,
    not ``O(deg)``.
    """
    device = nodes.device
    start = read(csr.indptr, nodes)
    degree = read(csr.indptr, nodes + 1) - start
    take = degree if fanout < 0 else degree.clamp(max=fanout)
    position = torch.repeat_interleave(torch.arange(nodes.numel(), device=device), take)
    offset = torch.arange(position.numel(), device=device) - torch.repeat_interleave(
        torch.cumsum(take, 0) - take, take
    )
    heavy = torch.nonzero(degree > take).flatten()
    if heavy.numel():
        heavy_deg = degree[heavy]
        picked = torch.empty((heavy.numel(), fanout), dtype=torch.int64, device=device)
        hub = heavy_deg > 4 * fanout
        for rows, draw in ((~hub, _shuffled_offsets), (hub, _rejected_offsets)):
            if bool(rows.any()):
                picked[rows] = draw(heavy_deg[rows], fanout, generator)
        is_heavy = torch.zeros(nodes.numel(), dtype=torch.bool, device=device)
        is_heavy[heavy] = True
        offset[is_heavy[position]] = picked.flatten()
    edge = start.index_select(0, position) + offset
    return position, read(csr.indices, edge).long(), edge


class NeighborSampler:
    """Samples multi-hop subgraphs around seed nodes of a CSR graph (see module docstring) on
    ``device`` (default: the CSR's; a CPU CSR sampled on a GPU must be pinned); the generator
    must live on that device too.

    ``fanouts``: neighbors per hop, every edge alike; or, over a CSR with relations
    (``csr.relation``), ``{relation: [k_1, ..., k_L]}``: each relation sampled on its own, up
    to ``k_l`` of its neighbors at hop ``l`` (0: none, -1: all), the relations' picks
    together making the hop."""

    def __init__(
        self,
        csr: CSR,
        fanouts: list[int] | dict[int, list[int]],
        device: torch.device | str | None = None,
    ):
        if not isinstance(csr, CSR):  # a PyG EdgeIndex, an edge_index, a sparse adjacency
            from gnnrec.data.pyg_stores import as_csr

            csr = as_csr(csr)
        if not fanouts:
            raise ValueError("fanouts must name at least one layer")
        self.csr = csr
        self.parts: list[tuple[CSR, torch.Tensor | None, list[int]]] = [(csr, None, list(fanouts))]
        if isinstance(fanouts, dict):
            self.parts = relation_parts(csr, fanouts)
        self.hops = len(self.parts[0][2])
        self.device = csr.indptr.device if device is None else torch.device(device)
        self.read: Read = index_read
        if self.device != csr.indptr.device:
            arrays = (csr.indptr, csr.indices, *csr.edge_fields(lambda t: t).values())
            if not all(t is None or t.is_pinned() for t in arrays):
                raise ValueError(
                    f"a CSR on {csr.indptr.device} cannot be sampled on {self.device}: move it "
                    "there (csr.to(device)) or pin it (csr.pin_memory()) to read it in place"
                )
            self.read = pinned_read
            self.parts = [
                (part.pin_memory(), None if at is None else at.pin_memory(), hops)
                for part, at, hops in self.parts
            ]

    def _hop(self, frontier: torch.Tensor, hop: int, generator) -> tuple[torch.Tensor, ...]:
        """``(target_position, neighbor, edge)`` of one hop (see :func:`sample_neighbors`),
        every relation's picks merged in target order."""
        picks = []
        for part, at, hops in self.parts:
            if hops[hop] == 0:
                continue
            position, neighbor, edge = sample_neighbors(
                part, frontier, hops[hop], generator, self.read
            )
            picks.append((position, neighbor, edge if at is None else self.read(at, edge)))
        if len(picks) == 1:
            return picks[0]
        if not picks:
            empty = torch.zeros(0, dtype=torch.int64, device=frontier.device)
            return empty, empty, empty
        position, neighbor, edge = (torch.cat(p) for p in zip(*picks))
        order = torch.argsort(position, stable=True)
        return position[order], neighbor[order], edge[order]

    def sample(
        self, seeds: torch.Tensor, generator: torch.Generator | None = None
    ) -> SampledSubgraph:
        device = self.device
        seeds = torch.as_tensor(seeds, dtype=torch.int64).to(device)
        if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= self.csr.num_rows):
            raise ValueError(f"seed nodes must be in [0, {self.csr.num_rows})")
        n_id, seed_index = unique_in_order(seeds)
        batch_size = n_id.numel()
        first = 0  # the frontier: nodes n_id[first:], first reached at the last hop
        targets, sources, edges = [], [], []
        num_nodes, num_edges = [batch_size], []
        for hop in range(self.hops):
            position, neighbor, edge = self._hop(n_id[first:], hop, generator)
            known = n_id.numel()
            n_id, local = unique_in_order(torch.cat([n_id, neighbor]))
            local = local[known:]
            targets.append(position + first)
            sources.append(local)
            edges.append(edge)
            first = known
            num_nodes.append(n_id.numel() - known)
            num_edges.append(neighbor.numel())
        n = n_id.numel()
        # The hops' targets come in increasing order: the CSR needs no sort (each row lists
        # its sources in the order they were drawn).
        indptr = torch.zeros(n + 1, dtype=torch.int64, device=device)
        indptr[1:] = torch.cumsum(torch.bincount(torch.cat(targets), minlength=n), 0)
        dtype = torch.int32 if n < INDEX_DTYPE_LIMIT else torch.int64
        e_id = torch.cat(edges)
        fields = self.csr.edge_fields(lambda t: self.read(t, e_id))
        csr = CSR(indptr, torch.cat(sources).to(dtype), n, **fields)
        return SampledSubgraph(n_id, csr, batch_size, seed_index, num_nodes, num_edges, e_id)


def relation_parts(
    csr: CSR, fanouts: dict[int, list[int]]
) -> list[tuple[CSR, torch.Tensor, list[int]]]:
    """``(csr_r, positions_r, fanouts_r)`` of every relation ``fanouts`` names: its edges as a
    CSR of their own, and each one's position in ``csr``."""
    if csr.relation is None:
        raise ValueError("per-relation fanouts need a CSR with relations (csr.relation)")
    lengths = {len(hops) for hops in fanouts.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"every relation needs one fanout per hop, got {fanouts}")
    split = csr.by_relation(max(fanouts) + 1)
    return [(*split[r], list(hops)) for r, hops in sorted(fanouts.items())]
