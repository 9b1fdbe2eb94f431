"""Explanations: faithfulness by deletion against random edges and PyG's GNNExplainer, and speed.

For each dataset (ml-latest-small; the planted synthetic data, ``gnnrec synth`` with planted
communities) a LightGCN run is trained and loaded; ``--pairs`` users (seeded, each with more
than ``--remove`` training items) are paired with an item drawn from their top ``--top`` (20)
recommendations (a top-1 item seldom moves when three of a user's items go: its margin is
wide). For each pair
three sets of ``--remove`` of the user's items are taken out of the user's row and the user
folded back in (the model's own layers over the rest of the graph, held at its trained state:
:mod:`gnnrec.serve.fold_in`): the items with the largest evidence terms
(:mod:`gnnrec.explain.evidence`), random items (seeded), and, for the first
``--gnnexplainer-pairs``, the items whose edges (both directions) PyG's ``GNNExplainer`` masks
highest on the same model (``LGConv`` layers over the same embeddings; checked to give the
run's embeddings). The rank drop is the item's rank after less its rank before (among the
items the user did not have). Speed: evidence for one pair at a time (median), and for every
pair in one batch (pairs/s); GNNExplainer's seconds per pair beside it.

    gnnrec bench explain [--datasets ml-latest-small planted] [--pairs 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gnnrec.bench.arguments import add_output_argument
from gnnrec.bench.harness import markdown_table, pyplot, report, save_figure
from gnnrec.common.flags import whole
from gnnrec.config import add_override_argument

DATASETS = ("ml-latest-small", "planted")
METHODS = ("evidence", "random", "gnnexplainer")


def _train(dataset: str, folder: Path, args) -> Path:
    """A LightGCN run on ``dataset`` (its recipe, ``--set`` on top)."""
    from gnnrec.config import load_config
    from gnnrec.recipes import RECIPES
    from gnnrec.run import train_run

    run_dir = folder / dataset
    overrides = [f'run_dir="{run_dir}"', "train.progress=false"]
    if dataset == "planted":
        from gnnrec.data.synthetic import SyntheticSpec, write_synthetic

        spec = SyntheticSpec(num_users=3000, num_items=600, interactions_per_user=20.0)
        data = write_synthetic(spec, folder / "planted-data")
        overrides += ["data.dataset=synthetic", f'data.path="{data}"']
    config = load_config(
        None, [*overrides, *args.overrides], base=RECIPES["lightgcn_ml_latest_small"]()
    )
    train_run(config)
    return run_dir


def _pairs(handle, count: int, remove: int, seed: int, top: int) -> list[tuple[str, str]]:
    """``count`` users with more than ``remove`` items (seeded, users repeated when there are
    fewer), each with an item drawn from their top ``top`` recommendations."""
    rng = np.random.default_rng(seed)
    users = [u for u in handle.user_ids if len(handle.seen_items(u)) > remove]
    chosen = [users[i] for i in rng.permutation(max(count, len(users)))[:count] % len(users)]
    ranked = handle.recommend(list(dict.fromkeys(chosen)), k=top)
    return [(u, ranked[u][int(rng.integers(len(ranked[u])))][0]) for u in chosen if ranked[u]]


class _PyGLightGCN(torch.nn.Module):
    """The run's LightGCN as PyG layers (``LGConv``), so that GNNExplainer's edge masks reach
    them; its output at node ``u`` is ``s(u, item)``."""

    def __init__(self, layers: int):
        super().__init__()
        from torch_geometric.nn import LGConv

        self.convs = torch.nn.ModuleList(LGConv() for _ in range(layers))

    def embed(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        h, total = x, x
        for conv in self.convs:
            h = conv(h, edge_index)
            total = total + h
        return total / (len(self.convs) + 1)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, item: int) -> torch.Tensor:
        z = self.embed(x, edge_index)
        return (z * z[item]).sum(-1)


def _gnnexplainer_items(model, x, edge_index, user: int, item: int, remove: int, epochs: int):
    """The user's ``remove`` items whose edges GNNExplainer masks highest (both directions)."""
    from torch_geometric.explain import Explainer, GNNExplainer

    explainer = Explainer(
        model=model,
        algorithm=GNNExplainer(epochs=epochs),
        explanation_type="model",
        node_mask_type=None,
        edge_mask_type="object",
        model_config=dict(mode="regression", task_level="node", return_type="raw"),
    )
    mask = explainer(x, edge_index, index=user, item=item).edge_mask
    src, dst = edge_index
    mine = (src == user) | (dst == user)
    other = torch.where(src[mine] == user, dst[mine], src[mine])
    score = torch.zeros(x.shape[0]).index_add_(0, other, mask[mine].detach())
    nodes = torch.unique(other)
    return nodes[torch.argsort(score[nodes], descending=True)[:remove]].numpy()


def _rank(handle, z_user: torch.Tensor, item_row: int, seen: np.ndarray) -> tuple[int, float]:
    """``(rank, score)``: 1 + how many items the user did not have score above ``item_row``,
    and its score."""
    scores = handle.z[handle.num_users :] @ z_user
    scores[torch.as_tensor(seen)] = -torch.inf
    return int((scores > scores[item_row]).sum()) + 1, float(scores[item_row])


def dataset_rows(dataset: str, args, folder: Path) -> list[dict]:
    import gnnrec
    from gnnrec.serve.fold_in import fold_in_users

    run_dir = _train(dataset, folder, args)
    handle = gnnrec.load(run_dir)
    handle.prepare_fold_in()
    pairs = _pairs(handle, args.pairs, args.remove, args.seed, args.top)
    U = handle.num_users
    # speed: one pair at a time, then all in one batch
    for user, item in pairs[:5]:
        handle.explain(user, item)  # warm-up
    singles = []
    for user, item in pairs[: min(len(pairs), 200)]:
        start = time.perf_counter()
        handle.explain(user, item)
        singles.append(1000 * (time.perf_counter() - start))
    start = time.perf_counter()
    explanations = handle.explain_pairs(pairs, k=args.remove, paths=0)
    batch_s = time.perf_counter() - start
    # deletion
    state, model = handle._state, handle.model
    graph = handle._data.graph.csr
    indptr, indices = graph.indptr.numpy(), graph.indices.numpy()
    x = state.states[0]
    edge_index = torch.stack(
        [torch.repeat_interleave(torch.arange(len(indptr) - 1), graph.degree()), graph.indices]
    )
    pyg = _PyGLightGCN(len(model.convs))
    check = pyg.embed(x, edge_index)
    gap = float((check - handle.z).abs().max() / handle.z.abs().max())
    rng = np.random.default_rng(args.seed + 1)
    drops: dict[str, list[int]] = {m: [] for m in METHODS}
    score_drops: dict[str, list[float]] = {m: [] for m in METHODS}
    gnn_seconds = []
    for n, (user, item) in enumerate(pairs):
        row = handle._user_row[user]
        item_row = int(handle.item_rows([item])[0])
        history = indices[indptr[row] : indptr[row + 1]] - U  # item rows (a bipartite graph)
        seen = handle._seen_rows(user)
        before, score = _rank(handle, handle.z[row], item_row, seen)
        e = explanations[n]
        chosen = {
            "evidence": handle.item_rows([t.node for t in e.history[: args.remove]]),
            "random": rng.choice(history, args.remove, replace=False),
        }
        if n < args.gnnexplainer_pairs:
            start = time.perf_counter()
            nodes = _gnnexplainer_items(
                pyg, x, edge_index, row, U + item_row, args.remove, args.gnnexplainer_epochs
            )
            gnn_seconds.append(time.perf_counter() - start)
            chosen["gnnexplainer"] = nodes - U
        h0 = state.states[0][row : row + 1]
        for method, removed in chosen.items():
            kept = np.setdiff1d(history, removed)
            with torch.no_grad():
                z = fold_in_users(model, state, h0, [kept])[0]
            rank, after = _rank(handle, z, item_row, seen)
            drops[method].append(rank - before)
            score_drops[method].append(score - after)
    handle.close()
    row = {
        "bench": "explain",
        "dataset": dataset,
        "model": "LightGCN",
        "users": U,
        "items": handle.num_items,
        "pairs": len(pairs),
        "remove": args.remove,
        "pyg_model_gap": gap,
        "evidence_ms_per_pair": statistics.median(singles),
        "evidence_pairs_per_s_batch": len(pairs) / batch_s,
        "gnnexplainer_pairs": len(drops["gnnexplainer"]),
        "gnnexplainer_epochs": args.gnnexplainer_epochs,
        "gnnexplainer_s_per_pair": statistics.median(gnn_seconds) if gnn_seconds else None,
    }
    for method in METHODS:
        values = drops[method]
        row[f"mean_rank_drop_{method}"] = float(np.mean(values)) if values else None
        row[f"mean_score_drop_{method}"] = float(np.mean(score_drops[method])) if values else None
    for other in ("random", "gnnexplainer"):  # on the pairs both were measured on
        n = len(drops[other])
        if not n:
            continue
        ours, theirs = np.asarray(drops["evidence"][:n]), np.asarray(drops[other])
        row[f"win_rate_vs_{other}"] = float(np.mean(ours > theirs))  # rank lowered more
        row[f"tie_rate_vs_{other}"] = float(np.mean(ours == theirs))
        ours_s, theirs_s = np.asarray(score_drops["evidence"][:n]), np.asarray(score_drops[other])
        row[f"score_win_rate_vs_{other}"] = float(np.mean(ours_s > theirs_s))
    subset = drops["evidence"][: len(drops["gnnexplainer"])]  # like for like with GNNExplainer
    row["mean_rank_drop_evidence_on_gnnexplainer_pairs"] = (
        float(np.mean(subset)) if subset else None
    )
    row["unchanged_rank_share_evidence"] = float(np.mean(np.asarray(drops["evidence"]) == 0))
    return [row]


def table(rows: list[dict]) -> str:
    columns = [
        "dataset", "pairs", "mean_rank_drop_evidence", "mean_rank_drop_random",
        "win_rate_vs_random", "tie_rate_vs_random", "score_win_rate_vs_random",
        "gnnexplainer_pairs", "mean_rank_drop_evidence_on_gnnexplainer_pairs",
        "mean_rank_drop_gnnexplainer", "win_rate_vs_gnnexplainer", "score_win_rate_vs_gnnexplainer",
        "evidence_ms_per_pair",
        "evidence_pairs_per_s_batch", "gnnexplainer_s_per_pair",
    ]  # fmt: skip
    return markdown_table(rows, columns)


def plot(rows: list[dict], path: Path) -> Path:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bars = [
        ("evidence top-3 (all pairs)", "mean_rank_drop_evidence"),
        ("random 3 (all pairs)", "mean_rank_drop_random"),
        ("evidence top-3 (GNNExplainer's pairs)", "mean_rank_drop_evidence_on_gnnexplainer_pairs"),
        ("GNNExplainer top-3", "mean_rank_drop_gnnexplainer"),
    ]
    width = 0.8 / len(bars)
    for k, (label, key) in enumerate(bars):
        values = [r.get(key) or 0.0 for r in rows]
        offset = (k - (len(bars) - 1) / 2) * width
        left.bar(np.arange(len(rows)) + offset, values, width, label=label)
    left.set_xticks(np.arange(len(rows)), [r["dataset"] for r in rows])
    left.set_ylabel("mean rank drop of the item (higher: more faithful)")
    left.set_title("Removing 3 of the user's items, folding the user back in")
    left.legend(fontsize=8)
    speed = [r["evidence_ms_per_pair"] for r in rows]
    gnn = [(r.get("gnnexplainer_s_per_pair") or 0.0) * 1000 for r in rows]
    x = np.arange(len(rows))
    right.bar(x - 0.2, speed, 0.4, label="evidence (one pair)")
    right.bar(x + 0.2, gnn, 0.4, label="GNNExplainer (one pair)")
    right.set_yscale("log")
    right.set_xticks(x, [r["dataset"] for r in rows])
    right.set_ylabel("milliseconds per pair (log)")
    right.set_title(f"Speed ({rows[0]['device']}, {rows[0]['cpu_count']} cores)")
    right.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="gnnrec bench explain", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--pairs", type=whole(), default=1000)
    parser.add_argument("--remove", type=whole(), default=3, help="items removed a pair")
    parser.add_argument(
        "--top", type=whole(), default=20, help="each pair's item: one of the user's top N"
    )
    parser.add_argument("--gnnexplainer-pairs", type=whole(0), default=30)
    parser.add_argument("--gnnexplainer-epochs", type=whole(), default=100)
    parser.add_argument("--seed", type=whole(0), default=0)
    add_override_argument(parser, "config override for the runs")
    add_output_argument(parser, "explain")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gnnrec-explain-") as tmp:
        for dataset in args.datasets:
            rows += dataset_rows(dataset, args, Path(tmp))
    return report(rows, args.output, plot, table)


if __name__ == "__main__":
    main()
