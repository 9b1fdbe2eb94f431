"""Neighbor-sampling throughput on a synthetic power-law user–item graph (CPU).

Our sampler against torch-sparse's ``neighbor_sample`` (when installed), same graph, seeds and
fanouts, in one process. Reports sampled edges/s and seeds/s.

    python -m gnnrec.bench.sampling --users 200000 --items 50000 --edges 5000000
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, median_seconds, provenance, write_results
from gnnrec.common.flags import whole
from gnnrec.data import CSR, GraphStore
from gnnrec.train.sampler import NeighborSampler


def power_law_bipartite(
    num_users: int, num_items: int, num_edges: int, alpha: float = 1.0, seed: int = 0
) -> GraphStore:
    """Users uniform, items with popularity ``p_i ∝ (i + 1)^-alpha`` (a power-law degree tail)."""
    rng = np.random.default_rng(seed)
    weights = (np.arange(num_items) + 1.0) ** -alpha
    items = rng.choice(num_items, size=num_edges, p=weights / weights.sum())
    users = rng.integers(0, num_users, num_edges)
    return GraphStore.bipartite(users, items, num_users, num_items)


# Chi-square critical values at p = 0.001 by degrees of freedom.
CHI2_P001 = {9: 27.88, 39: 72.05}


def uniformity_chi2(
    device: torch.device | str = "cpu", degree: int = 10, trials: int = 4000
) -> tuple[float, float]:
    """``(chi2, critical value at p = 0.001)`` for how often each of a hub's ``degree``
    neighbors is among ``fanout = 3`` samples over ``trials`` draws on ``device``; uniform
    sampling without replacement draws each with probability ``3 / degree``. Degree 10 takes
    the shuffle path of the sampler, degree 40 the redraw path (see ``sample_neighbors``).
    The trials are ``trials`` hubs with disjoint neighbors, sampled in one batch."""
    hubs = torch.arange(trials)
    neighbors = trials + torch.arange(trials * degree)
    n = trials * (degree + 1)
    csr = CSR.from_edges(hubs.repeat_interleave(degree), neighbors, n, n)
    sampler = NeighborSampler(csr.to(device), [3])
    generator = torch.Generator(device=device).manual_seed(0)
    sampled = sampler.sample(hubs, generator).n_id[trials:].cpu()
    counts = torch.bincount((sampled - trials) % degree, minlength=degree)
    expected = trials * 3 / degree
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    return chi2, CHI2_P001[degree - 1]


def run(args: argparse.Namespace) -> list[dict]:
    graph = power_law_bipartite(args.users, args.items, args.edges, seed=args.seed)
    g = torch.Generator().manual_seed(args.seed)
    batches = [
        torch.randint(0, graph.num_nodes, (args.batch_size,), generator=g)
        for _ in range(args.batches)
    ]
    config = {
        "nodes": graph.num_nodes,
        "edges": graph.num_edges,
        "fanouts": args.fanouts,
        "batch_size": args.batch_size,
        "batches": args.batches,
    }
    ours = NeighborSampler(graph.csr, args.fanouts)
    candidates = {"gnnrec NeighborSampler": lambda seeds: ours.sample(seeds, g).csr.num_edges}
    try:
        import torch_sparse  # noqa: F401

        indptr, indices = graph.csr.indptr, graph.csr.indices.long()
        candidates["torch_sparse.neighbor_sample"] = lambda seeds: (
            torch.ops.torch_sparse.neighbor_sample(
                indptr, indices, seeds, args.fanouts, False, True
            )[1].numel()
        )
    except ImportError:
        pass
    rows = []
    for name, sample in candidates.items():
        edges = [0]

        def epoch(sample=sample, edges=edges):
            edges[0] = sum(sample(seeds) for seeds in batches)

        seconds = median_seconds(epoch, repeats=args.repeats)
        rows.append(
            {
                "bench": "sampling",
                "sampler": name,
                "seconds": seconds,
                "sampled_edges_per_s": edges[0] / seconds,
                "seeds_per_s": args.batch_size * args.batches / seconds,
                "config": config,
                **provenance(),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench sampling", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--users", type=whole(), default=200_000)
    parser.add_argument("--items", type=whole(), default=50_000)
    parser.add_argument("--edges", type=whole(), default=5_000_000)
    parser.add_argument("--fanouts", type=whole(), nargs="+", default=[15, 10, 5])
    parser.add_argument("--batch-size", type=whole(), default=1024)
    parser.add_argument("--batches", type=whole(), default=10)
    parser.add_argument("--repeats", type=whole(), default=3)
    parser.add_argument("--seed", type=whole(0), default=0)
    add_output_argument(parser, "sampling")
    args = parser.parse_args(argv)
    rows = run(args)
    write_results(rows, args.output)
    print(f"{rows[0]['device']}, {rows[0]['torch_threads']} threads, config {rows[0]['config']}")
    print(markdown_table(rows, ["sampler", "seconds", "sampled_edges_per_s", "seeds_per_s"]))
    return rows


if __name__ == "__main__":
    main()
