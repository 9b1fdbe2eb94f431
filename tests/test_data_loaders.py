"""Loaders read every supported format into the same TextGraph."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from gnnrec.data import (
    ColumnMapping,
    DataError,
    load_lightgcn_split,
    load_ml_1m,
    load_ml_100k,
    load_ml_latest_small,
    load_table,
)
from gnnrec.data.sources import resolve_source


def test_bundled_ml_latest_small_matches_its_readme():
    graph = load_ml_latest_small()
    assert (graph.num_users, graph.num_items, len(graph.interactions)) == (610, 9742, 100836)
    toy_story = graph.items.ids.index("1")
    text = graph.items.text(toy_story)
    assert "Toy Story (1995)" in text and "Animation" in text and "pixar" in text
    assert set(np.unique(graph.interactions.rating)) <= {0.5 * k for k in range(1, 11)}
    assert graph.interactions.timestamp.min() > 800_000_000


def test_ml_100k_format(tmp_path):
    (tmp_path / "u.item").write_bytes(
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
        "2|Misérables, Les (1995)|01-Jan-1995||http://y|0|0|0|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0\n".encode(
            "latin-1"
        )
    )
    (tmp_path / "u.data").write_text("7\t1\t5\t881250949\n3\t2\t3\t891717742\n7\t2\t4\t1\n")
    (tmp_path / "u.user").write_text("3|24|M|technician|85711\n7|53|F|other|94043\n")
    graph = load_ml_100k(tmp_path)
    assert graph.users.ids == ["3", "7"]
    assert graph.items.text_fields["title"][1] == "Misérables, Les (1995)"
    assert graph.items.text_fields["genres"][0] == "Animation, Children's, Comedy"
    assert "technician" in graph.users.text(0)
    assert graph.interactions.user.tolist() == [1, 0, 1]
    assert graph.interactions.rating.tolist() == [5.0, 3.0, 4.0]


def test_ml_1m_format(tmp_path):
    (tmp_path / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Comedy\n5::Père (1990)::Drama\n".encode("latin-1")
    )
    (tmp_path / "ratings.dat").write_text("1::5::4::978300760\n2::1::5::978302109\n")
    graph = load_ml_1m(tmp_path)
    assert graph.items.text_fields["title"][1] == "Père (1990)"
    assert graph.interactions.item.tolist() == [1, 0]
    assert graph.interactions.timestamp.tolist() == [978300760, 978302109]


def test_lightgcn_split_files(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2 3\n1 0\n2 4 5\n")
    (tmp_path / "test.txt").write_text("0 4\n1 2 3\n2\n")
    graph, split = load_lightgcn_split(tmp_path)
    assert (graph.num_users, graph.num_items) == (3, 6)
    inter = graph.interactions
    train = sorted(zip(inter.user[split.train].tolist(), inter.item[split.train].tolist()))
    test = sorted(zip(inter.user[split.test].tolist(), inter.item[split.test].tolist()))
    assert train == [(0, 1), (0, 2), (0, 3), (1, 0), (2, 4), (2, 5)]
    assert test == [(0, 4), (1, 2), (1, 3)]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_generic_table_with_column_mapping(tmp_path, suffix):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.table({"who": ["a", "b", "a"], "what": ["x", "y", "y"], "stars": [1.0, 2.0, 3.0]})
    items = pa.table({"what": ["y", "x", "z"], "name": ["Why", "Ex", "Zed"]})
    paths = []
    for name, t in (("inter", table), ("items", items)):
        path = tmp_path / f"{name}{suffix}"
        (pq.write_table if suffix == ".parquet" else pacsv.write_csv)(t, path)
        paths.append(path)
    mapping = ColumnMapping(user="who", item="what", rating="stars", item_text=["name"])
    graph = load_table(paths[0], items=paths[1], mapping=mapping)
    assert graph.items.ids == ["y", "x", "z"]
    assert graph.interactions.item.tolist() == [1, 0, 0]
    assert graph.interactions.rating.tolist() == [1.0, 2.0, 3.0]
    assert graph.items.text(2) == "Name: Zed."


def test_url_source_is_verified_by_sha256_and_cached(tmp_path):
    payload = tmp_path / "train.txt"
    payload.write_text("0 1 2\n")
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    local = resolve_source(payload.as_uri(), digest, cache)
    assert local.read_text() == "0 1 2\n" and local.parent == cache
    payload.write_text("changed")
    assert resolve_source(payload.as_uri(), digest, cache) == local  # no second download
    with pytest.raises(DataError, match="sha256 mismatch"):
        resolve_source(payload.as_uri(), "0" * 64, tmp_path / "other")
    assert not list((tmp_path / "other").iterdir())  # nothing half-written is left behind
    with pytest.raises(DataError, match="needs its sha256"):
        resolve_source(payload.as_uri())


def test_missing_path_is_reported(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        resolve_source(Path(tmp_path / "nope"))


def test_item_item_edges_join_the_training_graph(tmp_path):
    from gnnrec.data import GraphStore, split_interactions
    from gnnrec.train.training_data import training_data

    (tmp_path / "inter.csv").write_text("user_id,item_id\na,x\nb,y\na,z\n")
    (tmp_path / "similar.csv").write_text("src,dst\nx,y\n")
    graph = load_table(tmp_path / "inter.csv", item_edges=tmp_path / "similar.csv")
    assert graph.item_edges.tolist() == [[0], [1]]
    store = training_data(
        graph, split_interactions(graph, test_fraction=0.0, valid_fraction=0.0)
    ).graph
    x, y = 2 + 0, 2 + 1  # items come after the 2 users
    assert y in store.csr.indices[store.csr.indptr[x] : store.csr.indptr[x + 1]].tolist()
    assert isinstance(store, GraphStore) and store.symmetric
    (tmp_path / "bad.csv").write_text("src,dst\nx,nope\n")
    with pytest.raises(DataError, match=r"bad.csv:2: unknown item 'nope'"):
        load_table(tmp_path / "inter.csv", item_edges=tmp_path / "bad.csv")
