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
    HeteroSamplerOutput,
    NegativeSampling,
    NodeSamplerInput,
    SamplerOutput,
)

from gnnrec.data.graph_store import CSR, GraphStore
from gnnrec.data.hetero import TypedGraph, TypeNames
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


class PyGHeteroNeighborSampler(BaseSampler):
    """Our sampler behind PyG's typed loaders: ``NodeLoader`` with ``input_nodes=("user",
    ids)`` and ``LinkLoader`` with ``edge_label_index=(("user", "rates", "item"), pairs)`` over
    a user–item store (:class:`~gnnrec.data.hetero.TypedGraph`; feature and graph stores
    :meth:`~gnnrec.data.pyg_stores.PyGFeatureStore.hetero` and
    :class:`~gnnrec.data.pyg_stores.PyGHeteroGraphStore`). Sampling runs on the one CSR of all
    nodes (``num_neighbors`` per hop, every edge type alike); its output is split by type:
    local ids per node type (seeds first, in input order), ``row``/``col`` per edge type and
    ``edge`` the sampled edges' positions in their type's CSC (``to_hetero``'s order, so its
    ``edge_weight`` lines up). Negatives (``neg_sampling`` ``binary`` or ``triplet``) are PyG's
    own draw over the destination type's ids, from a seed drawn from ``seed``'s generator:
    the batches repeat with the seed."""

    def __init__(
        self,
        graph: GraphStore | TypedGraph,
        num_neighbors: list[int],
        *,
        names: TypeNames | None = None,
        seed: int | None = None,
    ):
        self.typed = graph if isinstance(graph, TypedGraph) else TypedGraph(graph, names)
        self.sampler = NeighborSampler(self.typed.store.csr, num_neighbors)
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(seed)

    def _global(self, node_type: str, nodes: torch.Tensor) -> torch.Tensor:
        nodes = torch.as_tensor(nodes, dtype=torch.int64)
        n = self.typed.num_nodes(node_type)
        if nodes.numel() and (int(nodes.min()) < 0 or int(nodes.max()) >= n):
            raise ValueError(f"{node_type} ids must be in [0, {n})")
        return nodes + self.typed.offset(node_type)

    def _hetero_output(self, seed_dict: dict[str, torch.Tensor], _=None) -> HeteroSamplerOutput:
        """Samples around the seeds of every node type and splits the subgraph by type."""
        typed = self.typed
        seeds = torch.cat(
            [self._global(t, seed_dict.get(t, torch.zeros(0))) for t in typed.node_types]
        )
        sub = self.sampler.sample(seeds, self.generator)
        if sub.batch_size != seeds.numel():
            raise ValueError("input nodes of one batch must be distinct")
        node_type = typed.type_index(sub.n_id)
        local = torch.empty_like(sub.n_id)  # each node's id among the nodes of its type
        node, bounds, num_nodes = {}, [0, *sub.hops], {}
        for index, t in enumerate(typed.node_types):
            mask = node_type == index
            local[mask] = torch.arange(int(mask.sum()))
            node[t] = sub.n_id[mask] - typed.offset(t)
            num_nodes[t] = [int(mask[a:b].sum()) for a, b in zip(bounds, bounds[1:])]
        targets, sources = sub.csr.row_ids(), sub.csr.indices.long()
        kind = typed.relation[sub.e_id]
        hop_of_edge = torch.bucketize(targets, torch.tensor(sub.hops[:-1]), right=True)
        row, col, edge, num_edges = {}, {}, {}, {}
        for edge_type in typed.edge_types:
            mask = kind == typed.kind(edge_type)
            row[edge_type], col[edge_type] = local[sources[mask]], local[targets[mask]]
            edge[edge_type] = typed.type_rank[sub.e_id[mask]]
            hops = torch.bincount(hop_of_edge[mask], minlength=len(sub.num_sampled_edges))
            num_edges[edge_type] = hops[: len(sub.num_sampled_edges)].tolist()
        return HeteroSamplerOutput(
            node=node,
            row=row,
            col=col,
            edge=edge,
            num_sampled_nodes=num_nodes,
            num_sampled_edges=num_edges,
        )

    def sample_from_nodes(self, index: NodeSamplerInput, **kwargs) -> HeteroSamplerOutput:
        if index.time is not None:
            raise ValueError("PyGHeteroNeighborSampler does not sample by time")
        if index.input_type is None:
            raise ValueError("give the input nodes with their type: input_nodes=('user', ids)")
        out = self._hetero_output({index.input_type: index.node})
        out.metadata = (index.input_id, index.time)
        return out

    def sample_from_edges(
        self, index: EdgeSamplerInput, neg_sampling: NegativeSampling | None = None
    ) -> HeteroSamplerOutput:
        from torch_geometric.sampler.neighbor_sampler import edge_sample

        if index.time is not None:
            raise ValueError("PyGHeteroNeighborSampler does not sample by time")
        if index.input_type is None:
            raise ValueError("give the links with their type: (('user', 'rates', 'item'), pairs)")
        self.typed.kind(index.input_type)  # a known edge type
        num_nodes = {t: self.typed.num_nodes(t) for t in self.typed.node_types}
        seed = int(torch.randint(2**62, (1,), generator=self.generator))
        with torch.random.fork_rng(devices=[]):  # PyG draws negatives from the global generator
            torch.manual_seed(seed)
            return edge_sample(index, self._hetero_output, num_nodes, False, None, neg_sampling)
