"""The synthetic generator: deterministic, planted structure a model can learn, text that
reflects it, and parts the out-of-core build reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import planted_overrides

from gnnrec.common.atomic_files import OUTPUT_MARKER
from gnnrec.config import load_config
from gnnrec.data import ColumnMapping, DataError, load_table
from gnnrec.data.graph_store import GraphStore
from gnnrec.data.out_of_core import build_csr_out_of_core
from gnnrec.data.synthetic import (
    SyntheticSpec,
    draw_friendships,
    draw_item_links,
    generate_blocks,
    load_synthetic,
    node_pair_chunks,
    synthetic_graph,
    write_synthetic,
)
from gnnrec.run import train_run

SMALL = SyntheticSpec(num_users=600, num_items=160, communities=4, block_users=250)


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_graph(tmp_path):
    a = write_synthetic(SMALL, tmp_path / "a")
    b = write_synthetic(SMALL, tmp_path / "b")
    c = write_synthetic(SyntheticSpec(**{**SMALL.__dict__, "seed": 1}), tmp_path / "c")
    parallel = write_synthetic(SMALL, tmp_path / "parallel", workers=2)
    assert _digest(a) == _digest(b) == _digest(parallel) != _digest(c)
    assert len(list((a / "interactions").glob("part-*.npy"))) == 3  # 600 users, blocks of 250
    bare = write_synthetic(SMALL, tmp_path / "bare", write_csv=False, write_text=False)
    assert sorted(p.name for p in bare.iterdir()) == [
        OUTPUT_MARKER,
        "interactions",
        "manifest.json",
    ]


def test_planted_communities_power_law_and_text():
    spec = SyntheticSpec(num_users=5000, num_items=1000, communities=8, affinity=0.8)
    pairs = np.concatenate([p for _, p in generate_blocks(spec)], axis=1)
    same = (pairs[0] % 8 == pairs[1] % 8).mean()
    # 0.8 stay + 0.2 / 8 stray there by chance, less the repeats of popular in-community items
    # that merge into one interaction.
    assert 0.72 < same < 0.825
    scattered = SyntheticSpec(num_users=5000, num_items=1000, communities=8, affinity=0.0)
    loose = np.concatenate([p for _, p in generate_blocks(scattered)], axis=1)
    assert abs((loose[0] % 8 == loose[1] % 8).mean() - 1 / 8) < 0.02
    item_degree = np.bincount(pairs[1], minlength=spec.num_items)
    assert item_degree.max() > 10 * np.median(item_degree)  # a popularity head
    user_degree = np.bincount(pairs[0], minlength=spec.num_users)
    assert user_degree.min() >= 1 and user_degree.max() > 5 * np.median(user_degree)
    keys = pairs[0] * spec.num_items + pairs[1]
    assert np.unique(keys).size == keys.size  # no repeated interaction


def test_planted_friends_share_a_community_and_load_as_user_edges(tmp_path):
    spec = SyntheticSpec(**{**SMALL.__dict__, "friends_per_user": 5, "affinity": 0.8})
    folder = write_synthetic(spec, tmp_path / "social")
    pairs = draw_friendships(spec)
    same = (pairs[0] % 4 == pairs[1] % 4).mean()
    assert 0.78 < same < 0.9  # 0.8 planted + 0.2 / 4 by chance
    assert pairs.shape[1] > 0.95 * 5 * spec.num_users and not (pairs[0] == pairs[1]).any()
    graph = load_synthetic(folder)
    assert np.array_equal(graph.user_edges, pairs)
    assert (folder / "friendships.csv").read_text().splitlines()[
        1
    ] == f"u{pairs[0, 0]},u{pairs[1, 0]}"
    assert load_synthetic(folder, friendships=False).user_edges is None
    assert graph.item_edges is None  # no item links planted
    linked = SyntheticSpec(**{**spec.__dict__, "links_per_item": 3})
    items = load_synthetic(write_synthetic(linked, tmp_path / "linked")).item_edges
    assert np.array_equal(items, draw_item_links(linked)) and items.shape[1] > 0.9 * 3 * 160
    assert (items[0] % 4 == items[1] % 4).mean() > 0.75
    loose = draw_friendships(SyntheticSpec(**{**spec.__dict__, "affinity": 0.0}))
    assert abs((loose[0] % 4 == loose[1] % 4).mean() - 0.25) < 0.03
    assert (
        SMALL.friends_per_user == 0
        and load_synthetic(write_synthetic(SMALL, tmp_path / "plain")).user_edges is None
    )


@pytest.mark.slow
def test_the_pipeline_learns_it_and_ranks_cold_items_from_text(tmp_path, feature_cache):
    folder = write_synthetic(SMALL, tmp_path / "synthetic")
    common = [
        o
        for o in planted_overrides(Path("unused"), feature_cache)
        if o.startswith(("encoder", "model", "train"))
    ]
    for split in ("random", "cold_items"):
        config = load_config(
            None,
            [
                f'run_dir="{tmp_path / split}"',
                "data.dataset=synthetic",
                f'data.path="{folder}"',
                f"data.split={split}",
                *common,
                "train.batch_size=512",
                "eval.ks=[5, 20]",
            ],
        )
        metrics = train_run(config)
        if split == "random":
            assert metrics["recall@20"] > 1.3 * metrics["baselines"]["popularity"]["recall@20"]
        else:
            cold = metrics["cold"]
            assert cold["recall@5"] > 2 * metrics["baselines"]["random"]["cold"]["recall@5"]


def test_parts_build_the_bipartite_graph_out_of_core_and_in_memory_alike(tmp_path):
    folder = write_synthetic(SMALL, tmp_path / "synthetic", write_csv=False)
    assert not (folder / "interactions.csv").exists()
    U, I = SMALL.num_users, SMALL.num_items
    built = GraphStore.load(
        build_csr_out_of_core(
            node_pair_chunks(folder),
            U + I,
            tmp_path / "store",
            memory_budget=4096,
            symmetrize=True,
            num_users=U,
            num_items=I,
        )
    )
    pairs = np.concatenate([p for _, p in generate_blocks(SMALL)], axis=1)
    expected = GraphStore.bipartite(pairs[0], pairs[1], U, I)
    assert (built.num_users, built.num_items) == (U, I)
    assert torch.equal(built.csr.indptr, expected.csr.indptr)
    assert torch.equal(built.csr.indices, expected.csr.indices)
    # The same graph drawn and compressed in memory, without files (the GPU benchmark path).
    done = []
    drawn = synthetic_graph(SMALL, progress=done.append)
    assert done == [250, 500, 600] and drawn.symmetric
    assert (drawn.num_users, drawn.num_items) == (U, I)
    assert torch.equal(drawn.csr.indptr, built.csr.indptr)
    assert torch.equal(drawn.csr.indices, built.csr.indices)


@pytest.mark.parametrize("table", ["interactions.csv", "table"])
def test_the_dataset_loads_from_its_parts_as_from_its_tables(tmp_path, table):
    folder = write_synthetic(SMALL, tmp_path / "synthetic", write_parquet=True)
    assert len(list((folder / "table").glob("part-*.parquet"))) == 3  # a part per block
    from_parts = load_synthetic(folder)
    from_table = load_table(
        folder / table,
        users=folder / "users.csv",
        items=folder / "items.csv",
        mapping=ColumnMapping(
            rating="rating",
            timestamp="ts",
            user_text=["profile"],
            item_text=["title", "description"],
        ),
    )
    for kind in ("users", "items"):
        a, b = getattr(from_parts, kind), getattr(from_table, kind)
        assert a.ids == b.ids and a.text_fields == b.text_fields
    for field in ("user", "item", "rating", "timestamp"):
        assert np.array_equal(
            getattr(from_parts.interactions, field), getattr(from_table.interactions, field)
        )
    assert len(from_parts.interactions) > 1000

    bare = write_synthetic(SMALL, tmp_path / "bare", write_csv=False, write_text=False)
    with pytest.raises(DataError, match="users.csv: missing: this dataset was written without"):
        load_synthetic(bare)
    (folder / "interactions" / "part-00001.npy").unlink()
    with pytest.raises(DataError, match="part-00001.npy: missing interaction part"):
        load_synthetic(folder)
    with pytest.raises(DataError, match="not a folder written by"):
        load_synthetic(tmp_path)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: np.save(p, np.load(p).astype(np.float32)), "expected integer node ids"),
        (lambda p: np.save(p, np.load(p)[:1]), r"expected a \[2, c\] array"),
        (lambda p: p.write_bytes(p.read_bytes()[:60]), "not a readable .npy part"),
        (lambda p: np.save(p, np.load(p) + 10**9), "user ids outside the manifest"),
    ],
    ids=["float-ids", "one-row", "truncated", "out-of-range"],
)
def test_a_damaged_part_is_named_not_read_as_other_ids(tmp_path, damage, message):
    """A part with float ids was truncated to integers without a word; every damaged part is
    now an error naming it."""
    folder = write_synthetic(SMALL, tmp_path / "synthetic", write_csv=False)
    part = folder / "interactions" / "part-00000.npy"
    damage(part)
    with pytest.raises(DataError, match=f"part-00000.npy: {message}"):
        load_synthetic(folder)
