"""What typed relations cost: a typed model's training step and full-graph forward against the
same model over the merged graph, on a synthetic user–item graph with two extra relations
(planted friendships and item links), timed in the same process.

A step: a batch of training pairs, their users and items sampled (``fanouts`` per hop, every
relation alike), the model over the subgraph, the BPR loss against one random item each, the
backward and an Adam step. The forward: every node's embedding over the whole graph. GCN on ID
embeddings with per-relation weights (``conv_weights``) for the typed model and one weight for
the merged one; the peak is this process's resident memory over its level before the block
(the graph is held by both).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from gnnrec.bench.harness import PeakResident, median_seconds
from gnnrec.data.graph_store import CSR, GraphStore
from gnnrec.data.hetero import TypedGraph
from gnnrec.data.synthetic import SyntheticSpec, draw_block, draw_friendships, draw_item_links
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.models.graph_view import GraphView
from gnnrec.train.sampler import NeighborSampler


def cost_graph(users: int, seed: int) -> tuple[GraphStore, np.ndarray, dict]:
    """The graph (relations set) of ``users`` users with 20 interactions each on average, 5
    friends each and 5 links per item, its interaction pairs ``[2, E]``, and its sizes."""
    spec = SyntheticSpec(
        num_users=users,
        num_items=max(users // 10, 16),
        communities=16,
        interactions_per_user=20.0,
        friends_per_user=5,
        links_per_item=5,
        seed=seed,
    )
    blocks = -(-spec.num_users // spec.block_users)
    pairs = np.concatenate([draw_block(spec, b).numpy() for b in range(blocks)], axis=1)
    friends, links = draw_friendships(spec), draw_item_links(spec)
    store = GraphStore.bipartite(pairs[0], pairs[1], spec.num_users, spec.num_items, friends, links)
    store.csr.relation = TypedGraph(store).relation
    sizes = {
        "users": spec.num_users,
        "items": spec.num_items,
        "interactions": pairs.shape[1],
        "friendships": friends.shape[1],
        "item_links": links.shape[1],
        "directed_edges": store.num_edges,
    }
    return store, pairs, sizes


def measure(
    store: GraphStore,
    pairs: np.ndarray,
    relations: str,
    *,
    kernel: str = "per_relation",
    hidden: int = 64,
    layers: int = 2,
    fanouts: tuple[int, ...] = (10, 10),
    batch_size: int = 1024,
    steps: int = 5,
    seed: int = 0,
) -> dict:
    """Median seconds of a training step and of a full-graph forward of the ``relations``
    (``merged`` / ``typed``, with the typed layers' ``kernel``) model, and each block's peak
    resident memory."""
    config = ModelConfig(
        name="gcn",
        hidden=hidden,
        layers=layers,
        text_features=False,
        conv_weights=True,
        relations=relations,
        relation_kernel=kernel,
    )
    model = build_model(config, store.num_users, store.num_items, 0, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    csr = store.csr if relations == "typed" else _without_relations(store.csr)
    sampler = NeighborSampler(csr, list(fanouts))
    generator = torch.Generator().manual_seed(seed)
    U, I = store.num_users, store.num_items

    def step() -> None:
        batch = torch.randint(pairs.shape[1], (batch_size,), generator=generator)
        users = torch.as_tensor(pairs[0])[batch]
        positives = torch.as_tensor(pairs[1])[batch] + U
        negatives = torch.randint(I, (batch_size,), generator=generator) + U
        sub = sampler.sample(torch.cat([users, positives, negatives]), generator)
        view = GraphView.of(sub.csr, hops=sub.hops)
        z = model(sub.n_id, None, view)[sub.seed_index]
        z_u, z_p, z_n = z.split(batch_size)
        margin = model.pair_scores(z_u, z_p) - model.pair_scores(z_u, z_n)
        loss = -torch.nn.functional.logsigmoid(margin).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def forward() -> None:
        with torch.no_grad():
            view = GraphView.of(csr)
            model(
                torch.arange(store.num_nodes),
                None,
                view,
                torch.ones(store.num_nodes, dtype=torch.bool),
            )

    with PeakResident() as step_memory:
        step_s = median_seconds(step, repeats=steps, warmup=1)
    with PeakResident() as forward_memory:
        start = time.perf_counter()
        forward()
        forward_s = time.perf_counter() - start
    return {
        "relations": relations,
        "kernel": kernel,
        "step_s": step_s,
        "step_peak_mb": step_memory.peak_mb,
        "forward_s": forward_s,
        "forward_peak_mb": forward_memory.peak_mb,
        "layer_parameters": sum(p.numel() for p in model.convs.parameters()),
    }


def _without_relations(csr: CSR) -> CSR:
    """``csr`` as the merged model reads it (the same edges, no relation ids)."""
    return CSR(csr.indptr, csr.indices, csr.num_cols, csr.values)
