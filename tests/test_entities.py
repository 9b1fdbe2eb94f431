"""Node types beyond users and items: entity node tables and named relation tables (the
``table`` dataset's ``node_tables`` / ``edge_tables``), entities after the items in one node
space, each relation and its reverse carried by the graph store, PyG ``HeteroData`` and the
hetero sampler; runs that train on them (merged and typed, full and sampled, sharded ID
tables), rank only items, explain through entities, update and fold in; planted item
attributes from the synthetic generator; every bad table refused with its file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import check_hetero_batch, entity_overrides, write_csv, write_genre_tables

from gnnrec.data.errors import DataError
from gnnrec.data.graph_store import GraphStore
from gnnrec.data.hetero import GraphSchema, Relation, TypedGraph
from gnnrec.data.textgraph import RelationEdges

HAS_GENRE = Relation("has_genre", "item", "genre", "genre_of")


@pytest.fixture(scope="module")
def genre_tables(planted_dir, tmp_path_factory) -> Path:
    return write_genre_tables(planted_dir, tmp_path_factory.mktemp("genres"))


def _load(planted_dir, cache, folder, *extra):
    from helpers import planted_config

    from gnnrec.data.datasets import load_dataset

    config = planted_config(planted_dir, cache, folder / "unused-run", *extra)
    return load_dataset(config.data)[0]


def test_schema_refuses_unknown_types_and_reused_names():
    with pytest.raises(ValueError, match="unknown node type 'genre'"):
        GraphSchema((), (HAS_GENRE,))
    with pytest.raises(ValueError, match="relation name 'rates' is taken"):
        GraphSchema((("genre", 2),), (Relation("rates", "item", "genre"),))
    with pytest.raises(ValueError, match="relation name 'genre_of' is taken"):
        GraphSchema((("genre", 2),), (HAS_GENRE, Relation("genre_of", "user", "genre")))
    with pytest.raises(ValueError, match="distinct names other than"):
        GraphSchema((("item", 2),))
    assert GraphSchema((("genre", 2),), (HAS_GENRE,)).relation_names[4:] == (
        "has_genre",
        "genre_of",
    )


def _store(weighted: bool = False) -> GraphStore:
    """3 users, 4 items, 2 genres and 2 tags: interactions, item -> genre (a pair listed
    twice), user -> tag."""
    schema = GraphSchema((("genre", 2), ("tag", 2)), (HAS_GENRE, Relation("tagged", "user", "tag")))
    parts = [
        RelationEdges(
            HAS_GENRE,
            np.array([[0, 1, 2, 3, 3], [0, 0, 1, 1, 1]]),
            np.array([1, 2, 3, 4, 5], np.float32) if weighted else None,
        ),
        RelationEdges(schema.relations[1], np.array([[0, 2], [1, 0]])),
    ]
    return GraphStore.bipartite(
        np.array([0, 0, 1, 2]),
        np.array([0, 1, 2, 3]),
        3,
        4,
        weight=np.array([1, 1, 2, 2], np.float32) if weighted else None,
        schema=schema,
        relation_edges=parts,
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_entity_relations_join_the_graph_both_ways_with_their_ids(weighted):
    store = _store(weighted)
    assert store.num_nodes == 3 + 4 + 2 + 2 and store.schema.num_relations == 8
    csr, names = store.csr, store.schema.relation_names
    rows, cols, rel = csr.row_ids(), csr.indices.long(), csr.relation.long()
    genre = lambda g: 7 + g  # noqa: E731
    has_genre = (rel == names.index("has_genre")).nonzero().flatten()
    pairs = sorted(zip(cols[has_genre].tolist(), rows[has_genre].tolist()))
    assert pairs == [(3, genre(0)), (4, genre(0)), (5, genre(1)), (6, genre(1))]  # items 0..3
    back = rel == names.index("genre_of")
    assert sorted(zip(rows[back].tolist(), cols[back].tolist())) == pairs
    tag_of_user = rel == names.index("rev_tagged")
    assert sorted(zip(cols[tag_of_user].tolist(), rows[tag_of_user].tolist())) == [(9, 2), (10, 0)]
    if weighted:  # item 3 -> genre 1 listed twice: one edge, its largest weight, both ways
        at = (rows == genre(1)) & (cols == 6)
        assert csr.values[at].tolist() == [5.0]
        assert csr.values[(rows == 6) & (cols == genre(1))].tolist() == [5.0]
    else:
        assert csr.values is None


def test_entity_store_saves_and_round_trips_through_hetero_data(tmp_path):
    store = _store(weighted=True)
    loaded = GraphStore.load(store.save(tmp_path / "store"))
    assert loaded.schema == store.schema
    assert torch.equal(loaded.csr.relation, store.csr.relation)
    data = store.to_hetero()
    assert data["genre"].num_nodes == 2 and data["tag"].num_nodes == 2
    assert ("genre", "genre_of", "item") in data.edge_types
    assert data["item", "has_genre", "genre"].edge_index.tolist() == [[0, 1, 2, 3], [0, 0, 1, 1]]
    back = GraphStore.from_pyg(data)
    assert back.schema == store.schema
    for field in ("indptr", "indices", "values", "relation"):
        assert torch.equal(getattr(back.csr, field), getattr(store.csr, field)), field


def test_hetero_sampler_splits_entities_by_type():
    from gnnrec.train.pyg_sampler import PyGHeteroNeighborSampler

    store = _store()
    sampler = PyGHeteroNeighborSampler(store, [-1, -1], seed=0)
    out = sampler._hetero_output({"item": torch.tensor([3])})
    typed = TypedGraph(store)
    assert out.node["item"][0] == 3 and out.node["genre"].tolist() == [1]
    # every sampled edge of a type is an edge of that type (local ids)
    for edge_type, row in out.row.items():
        src, _, dst = edge_type
        col = out.col[edge_type]
        pairs = set(zip(*typed.edge_index(edge_type).tolist()))
        got = zip(out.node[src][row].tolist(), out.node[dst][col].tolist())
        assert set(got) <= pairs


def test_table_dataset_reads_entity_and_relation_tables(planted_dir, feature_cache, genre_tables):
    graph = _load(planted_dir, feature_cache, genre_tables, *entity_overrides(genre_tables))
    assert list(graph.entities) == ["genre"] and len(graph.entities["genre"]) == 4
    (part,) = graph.relation_edges
    assert part.relation == HAS_GENRE and part.edges.shape == (2, graph.num_items)
    with open(planted_dir / "items.csv") as f:
        genre_of = {row["item_id"]: "g_" + row["genre"] for row in csv.DictReader(f)}
    for item, genre in part.edges.T:
        assert graph.entities["genre"].ids[genre] == genre_of[graph.items.ids[item]]
    from gnnrec.data.user_text import entity_texts

    assert entity_texts(graph)[0].startswith("About: stories of")


def test_kg_triples_name_a_relation_per_row_and_untabled_entities_grow(
    planted_dir, feature_cache, genre_tables, tmp_path
):
    triples = write_csv(
        tmp_path / "kg.csv",
        ["head", "relation", "tail"],
        [
            ["i0_0", "directed_by", "e_ann"],
            ["i0_1", "starring", "e_bob"],
            ["i1_0", "starring", "e_ann"],
        ],
    )
    overrides = [
        'data.options.node_tables=[{type="entity"}]',
        f'data.options.edge_tables=[{{path="{triples}", source="item", target="entity", '
        'relation_column="relation", source_column="head", target_column="tail"}]',
    ]
    graph = _load(planted_dir, feature_cache, tmp_path, *overrides)
    assert graph.entities["entity"].ids == ["e_ann", "e_bob"]
    assert [p.relation.name for p in graph.relation_edges] == ["directed_by", "starring"]
    assert graph.schema.relation_names[-4:] == (
        "directed_by",
        "rev_directed_by",
        "starring",
        "rev_starring",
    )


BAD = [
    ({"target": "studio"}, None, "endpoint type 'studio' does not exist"),
    ({}, ["src,dst", "i0_0,g_nope"], r"item_genres.csv:2: unknown genre 'g_nope'"),
    ({}, ["src,dst", "nobody,g_space"], r"item_genres.csv:2: unknown item 'nobody'"),
    ({}, ["src,dst", "i0_0,"], r"item_genres.csv:2: empty dst"),
    ({}, ["src,dst"], "item_genres.csv: file has no data rows"),
    ({"weight_column": "w"}, ["src,dst,w", "i0_0,g_space,-1"], r"csv:2: w '-1' is negative"),
    ({"weight_column": "w"}, ["src,dst,w", "i0_0,g_space,abc"], r"csv:2: w 'abc'"),
    ({"weight_column": "w"}, ["src,dst", "i0_0,g_space"], r"missing column"),
    ({"relation": "rates"}, None, "relation name 'rates' is taken"),
]


@pytest.mark.parametrize("edge, rows, message", BAD)
def test_bad_relation_tables_are_refused_with_file_and_line(
    planted_dir, feature_cache, genre_tables, tmp_path, edge, rows, message
):
    folder = tmp_path / "tables"
    folder.mkdir()
    (folder / "genres.csv").write_text((genre_tables / "genres.csv").read_text())
    source = genre_tables / "item_genres.csv"
    (folder / "item_genres.csv").write_text(
        source.read_text() if rows is None else "\n".join(rows) + "\n"
    )
    with pytest.raises(DataError, match=message):
        _load(planted_dir, feature_cache, tmp_path, *entity_overrides(folder, **edge))


def test_a_relation_name_with_other_endpoints_and_colliding_ids_are_refused(
    planted_dir, feature_cache, genre_tables, tmp_path
):
    users = write_csv(tmp_path / "user_genres.csv", ["src", "dst"], [["u0", "g_space"]])
    twice = entity_overrides(genre_tables)[:1] + [
        "data.options.edge_tables=["
        f'{{path="{genre_tables / "item_genres.csv"}", source="item", target="genre", '
        'relation="likes"}, '
        f'{{path="{users}", source="user", target="genre", relation="likes"}}]'
    ]
    with pytest.raises(DataError, match=r"user_genres.csv:2: relation 'likes' links user -> genre"):
        _load(planted_dir, feature_cache, tmp_path, *twice)
    tags = write_csv(tmp_path / "tags.csv", ["id"], [["t_1"], ["g_space"]])
    collide = [
        "data.options.node_tables=["
        f'{{type="genre", path="{genre_tables / "genres.csv"}"}}, {{type="tag", path="{tags}"}}]'
    ]
    with pytest.raises(DataError, match="entity id 'g_space' is a tag and a genre"):
        _load(planted_dir, feature_cache, tmp_path, *collide)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (['data.options.node_tables=[{type="genre", colour="red"}]'], "unknown key"),
        (['data.options.node_tables=[{type="user"}]'], "not a new type name"),
        (
            ['data.options.edge_tables=[{path="x.csv", source="item", target="item"}]'],
            "give relation .* or relation_column",
        ),
        (['data.options.node_tables=[{path="x.csv"}]'], "type"),
    ],
)
def test_bad_table_specs_are_refused_when_the_config_is_read(overrides, message):
    from gnnrec.config import load_config

    with pytest.raises(ValueError, match=message):
        load_config(None, ["data.dataset=table", 'data.path="x.csv"', *overrides])


def _run(planted_dir, feature_cache, genre_tables, run_dir, *extra):
    from helpers import planted_config

    from gnnrec.run import train_run

    config = planted_config(
        planted_dir, feature_cache, run_dir, *entity_overrides(genre_tables), *extra
    )
    return train_run(config)


def test_an_entity_run_ranks_items_explains_through_genres_updates_and_folds_in(
    planted_dir, feature_cache, genre_tables, tmp_path
):
    import gnnrec
    from gnnrec.update import update_run

    run_dir = tmp_path / "run"
    lightgcn = ["model.name=lightgcn", "model.text_features=false", "model.layers=2"]
    metrics = _run(planted_dir, feature_cache, genre_tables, run_dir, *lightgcn, "train.epochs=3")
    assert metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]
    handle = gnnrec.load(run_dir)
    assert handle.z.shape[0] == handle.num_users + handle.num_items
    items = set(handle.graph.items.ids)
    ranked = handle.recommend(["u0", "u1"], 10)
    assert all(i in items for row in ranked.values() for i, _ in row)
    # a path through a genre: LightGCN's exact evidence names it by its id
    explanation = handle.explain("u0", ranked["u0"][0][0], k=30, paths=40)
    vias = {p.via for p in explanation.paths}
    assert vias & set(handle.graph.entities["genre"].ids)
    folded = handle.recommend_for_items(["i0_0", "i0_1"], 5)
    assert all(i in items for i, _ in folded)
    update = write_csv(
        tmp_path / "new.csv", ["user_id", "item_id", "rating", "ts"], [["u_new", "i0_2", 5, 9999]]
    )
    result = update_run(run_dir, update)
    assert result["update"]["new_users"] == 1
    after = gnnrec.load(run_dir)
    assert after.num_users == handle.num_users + 1
    # the entities' ID rows carried over to the new version
    from helpers import trained_model

    before_rows = trained_model(run_dir)["embedding.weight"]
    n = handle.num_users + handle.num_items
    assert torch.equal(after.model.embedding.weight[n + 1 :].cpu(), before_rows[n:].cpu())


def test_a_typed_sampled_run_samples_entity_relations_on_their_own(
    planted_dir, feature_cache, genre_tables, tmp_path
):
    typed = [
        "model.relations=typed",
        "train.mode=sampled",
        "train.fanouts=[4, 4]",
        "train.relation_fanouts={genre_of=[2, 0], has_genre=[-1, -1]}",
        "train.epochs=2",
    ]
    metrics = _run(planted_dir, feature_cache, genre_tables, tmp_path / "typed", *typed)
    assert metrics["recall@20"] > metrics["baselines"]["popularity"]["recall@20"]
    with pytest.raises(ValueError, match="names \\['likes'\\], not relations of this graph"):
        _run(
            planted_dir,
            feature_cache,
            genre_tables,
            tmp_path / "bad",
            *typed[:3],
            "train.relation_fanouts={likes=[2, 2]}",
        )


def test_synthetic_items_get_planted_attributes_of_their_community(tmp_path):
    from gnnrec.data.synthetic import SyntheticSpec, load_synthetic, write_synthetic

    spec = SyntheticSpec(
        num_users=40, num_items=60, communities=4, attributes_per_item=3, affinity=0.9
    )
    folder = write_synthetic(spec, tmp_path / "synth")
    graph = load_synthetic(folder)
    assert len(graph.entities["attribute"]) == 16
    (part,) = graph.relation_edges
    item, attribute = part.edges
    assert len(item) == 3 * 60
    assert np.mean(item % 4 == attribute % 4) > 0.8  # mostly in the item's community
    lines = (folder / "item_attributes.csv").read_text().splitlines()
    assert lines[0] == "src,dst" and lines[1] == f"i{item[0]},a{attribute[0]}"
    assert not load_synthetic(folder, item_attributes=False).entities


def test_gnnrec_synth_plants_attributes_that_a_run_reads(tmp_path, feature_cache):
    from gnnrec.cli import main
    from gnnrec.config import load_config
    from gnnrec.run import train_run

    data = tmp_path / "synth"
    argv = ["synth", "--users", "60", "--items", "24", "--communities", "3", "--output", str(data)]
    assert main([*argv, "--attributes-per-item", "2", "--attributes", "6"]) == 0
    overrides = [
        f'run_dir="{tmp_path / "run"}"',
        "data.dataset=synthetic",
        f'data.path="{data}"',
        "model.name=lightgcn",
        "model.text_features=false",
        "train.epochs=1",
        "train.progress=false",
    ]
    train_run(load_config(None, overrides))
    data_file = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data_file["entities"] == {"attribute": 6}
    assert data_file["relations"] == {"has_attribute": 24 * 2}


@pytest.mark.parametrize("sampler", ["gnnrec", "pyg"])
def test_pyg_loaders_sample_entity_types_over_our_stores(sampler):
    """PyG's ``NodeLoader`` with our sampler, or its own ``NeighborLoader`` (pyg-lib or
    torch-sparse), over our hetero stores of a graph with genres and tags: features of every
    node type read for the right rows, every sampled edge an edge of its type."""
    from torch_geometric.loader import NeighborLoader, NodeLoader
    from torch_geometric.typing import WITH_PYG_LIB, WITH_TORCH_SPARSE

    from gnnrec.data.pyg_stores import PyGFeatureStore, PyGHeteroGraphStore
    from gnnrec.train.pyg_sampler import PyGHeteroNeighborSampler

    store = _store(weighted=True)
    typed = TypedGraph(store)
    x = {t: torch.randn(typed.num_nodes(t), 4) for t in typed.node_types}
    data = (PyGFeatureStore.hetero({t: {"x": x[t]} for t in x}), PyGHeteroGraphStore(store))
    seeds = ("item", torch.tensor([0, 3]))
    if sampler == "pyg":
        if not (WITH_PYG_LIB or WITH_TORCH_SPARSE):
            pytest.skip("PyG's own neighbor sampler needs pyg-lib or torch-sparse")
        loader = NeighborLoader(data, num_neighbors=[-1, -1], input_nodes=seeds, batch_size=2)
    else:
        ours = PyGHeteroNeighborSampler(store, [-1, -1], seed=0)
        loader = NodeLoader(data, node_sampler=ours, input_nodes=seeds, batch_size=2)
    batch = next(iter(loader))
    assert batch["item"].n_id[:2].tolist() == [0, 3]
    assert sorted(batch["genre"].n_id.tolist()) == [0, 1]  # both genres, through items 0 and 3
    check_hetero_batch(batch, store, x)
