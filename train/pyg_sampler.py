"""Our neighbor sampler as a PyG ``BaseSampler``, so PyG's ``NodeLoader`` and ``LinkLoader``
drive it: ``NodeLoader((feature_store, graph_store), node_sampler=PyGNeighborSampler(...),
input_nodes=...)`` gives the same ``Data`` batches as PyG's ``NeighborLoader`` (``n_id``,
``batch_size``, ``edge_index`` ``[source; target]`` in local ids, seeds first), sampled by
:class:`~gnnrec.train.sampler.NeighborSampler` on the CPU or on a GPU.

``sample_from_edges`` samples around both endpoints of the seed links (and the negatives PyG
draws, for ``neg_sampling``); seeds are deduplicated, so ``edge_label_index`` is given in local
ids of ``n_id``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.sampler import (
    BaseSampler,
    EdgeSamplerInput,
    NegativeSampling,
    NodeSamplerInput,
    SamplerOutput,
)

from gnnrec.data.graph_store import CSR
from gnnrec.data.pyg_stores import as_csr
from gnnrec.train.sampler import NeighborSampler, SampledSubgraph


class PyGNeighborSampler(BaseSampler):
    """``graph``: anything :func:`~gnnrec.data.pyg_stores.as_csr` reads (our CSR or graph
    store, an ``EdgeIndex``, an ``edge_index``); ``num_neighbors``: fanouts per hop (-1: all);
    ``seed``: makes the batches reproducible (each call draws from one generator)."""

    def __init__(
        self,
        graph: Any,
        num_neighbors: list[int],
        *,
        device: torch.device | str | None = None,
        seed: int | None = None,
    ):
        csr: CSR = as_csr(graph)
        self.sampler = NeighborSampler(csr, num_neighbors, device)
        self.generator = torch.Generator(device=self.sampler.device)
        if seed is not None:
            self.generator.manual_seed(seed)

    def _output(self, sub: SampledSubgraph, metadata: Any) -> SamplerOutput:
        csr = sub.csr
        return SamplerOutput(
            node=sub.n_id.cpu(),
            row=csr.indices.long().cpu(),  # sources
            col=csr.row_ids().cpu(),  # targets
            edge=None,
            num_sampled_nodes=sub.num_sampled_nodes,
            num_sampled_edges=sub.num_sampled_edges,
            metadata=metadata,
        )

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> SamplerOutput:
        if index.time is not None:
            raise ValueError("PyGNeighborSampler does not sample by time")
        sub = self.sampler.sample(index.node, self.generator)
        if sub.batch_size != index.node.numel():
            raise ValueError("input nodes of one batch must be distinct")
        return self._output(sub, (index.input_id, index.time))

    def sample_from_edges(
        self, index: EdgeSamplerInput, neg_sampling: NegativeSampling | None = None
    ) -> SamplerOutput:
        if index.time is not None:
            raise ValueError("PyGNeighborSampler does not sample by time")
        src, dst, label = index.row, index.col, index.label
        if neg_sampling is not None:
            if not neg_sampling.is_binary():
                raise ValueError("PyGNeighborSampler supports binary negative sampling only")
            num_neg = int(round(neg_sampling.amount * src.numel()))
            n = self.sampler.csr.num_rows
            neg_src = neg_sampling.sample(num_neg, "src", n)
            neg_dst = neg_sampling.sample(num_neg, "dst", n)
            src = torch.cat([src, neg_src])
            dst = torch.cat([dst, neg_dst])
            ones = torch.ones(index.row.numel()) if label is None else label
            label = torch.cat([ones, torch.zeros(num_neg, dtype=ones.dtype)])
        sub = self.sampler.sample(torch.cat([src, dst]), self.generator)
        local = sub.seed_index.cpu()
        edge_label_index = torch.stack([local[: src.numel()], local[src.numel() :]])
        return self._output(sub, (index.input_id, edge_label_index, label, None))
