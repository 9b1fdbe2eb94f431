"""Ids keep their identity across files and types: one canonical id per table whatever Arrow
type a part stores it in (a CSV's ``0``, a Parquet int, a whole float ``0.0``, a dictionary of
strings); what cannot be an id (NaN, fractions, bytes, lists) is an error naming the file, the
column and the line. Table folders are read with their sub-folders, empty parts add nothing,
and catalogues neither repeat an id nor grow phantom rows for ids far beyond the others."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnnrec.data import ColumnMapping, DataError, load_table
from gnnrec.data.lightgcn_format import load_lightgcn_split
from gnnrec.data.movielens import load_ml_100k
from gnnrec.data.table_rows import load_table_rows

MAPPING = ColumnMapping(user="user", item="item", rating="rating", timestamp="ts")
ID_TYPES = {
    "csv": None,
    "int64": pa.int64(),
    "int32": pa.int32(),
    "uint16": pa.uint16(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "dictionary": pa.dictionary(pa.int32(), pa.string()),
}


def write_part(path, users: list[int], items: list[int], id_type: str) -> None:
    """One part holding the logical integer ids ``users``/``items`` stored as ``id_type``."""
    if id_type == "csv":
        lines = ["user,item,rating,ts"]
        lines += [f"{u},{i},4.0,{n}" for n, (u, i) in enumerate(zip(users, items))]
        path.with_suffix(".csv").write_text("\n".join(lines) + "\n")
        return
    t = ID_TYPES[id_type]

    def column(ids):
        if pa.types.is_floating(t):
            return pa.array([float(x) for x in ids], t)
        if pa.types.is_integer(t):
            return pa.array(ids, t)
        return pa.array([str(x) for x in ids], pa.string()).cast(t)

    table = pa.table(
        {
            "user": column(users),
            "item": column(items),
            "rating": pa.array([4.0] * len(users)),
            "ts": pa.array(range(len(users)), pa.int64()),
        }
    )
    pq.write_table(table, path.with_suffix(".parquet"))


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    types=st.lists(st.sampled_from(sorted(ID_TYPES)), min_size=1, max_size=3),
)
def test_one_id_whatever_type_each_part_stores_it_in(tmp_path_factory, data, types):
    folder = tmp_path_factory.mktemp("parts")
    logical_users, logical_items = set(), set()
    for n, id_type in enumerate(types):
        size = data.draw(st.integers(1, 6))
        users = data.draw(st.lists(st.integers(0, 9), min_size=size, max_size=size))
        items = data.draw(st.lists(st.integers(0, 60000), min_size=size, max_size=size))
        write_part(folder / f"part-{n}", users, items, id_type)
        logical_users |= set(users)
        logical_items |= set(items)
    graph = load_table(folder, mapping=MAPPING)
    assert sorted(graph.users.ids, key=int) == [str(u) for u in sorted(logical_users)]
    assert sorted(graph.items.ids, key=int) == [str(i) for i in sorted(logical_items)]
    reference = load_table_rows(folder, mapping=MAPPING)
    assert list(graph.users.ids) == list(reference.users.ids)
    assert np.array_equal(graph.interactions.user, reference.interactions.user)


@pytest.mark.parametrize(
    "values, message",
    [
        (pa.array([1.0, float("nan")]), "user nan is not a whole number"),
        (pa.array([1.0, 2.5]), "user 2.5 is not a whole number"),
        (pa.array([b"u0", b"u1"], pa.binary()), "column user holds binary values"),
        (pa.array([[0], [1]], pa.list_(pa.int64())), "column user holds list<"),
    ],
    ids=["nan", "fraction", "binary", "list"],
)
@pytest.mark.parametrize("reader", [load_table, load_table_rows], ids=["columnar", "rows"])
def test_what_cannot_be_an_id_is_named(tmp_path, values, message, reader):
    path = tmp_path / "inter.parquet"
    pq.write_table(pa.table({"user": values, "item": pa.array([1, 2])}), path)
    with pytest.raises(DataError, match=message) as err:
        reader(path, mapping=ColumnMapping(user="user", item="item"))
    assert str(path) in str(err.value)
    if "whole number" in message:
        assert f"{path}:3:" in str(err.value)  # the second row, as a CSV's line


def test_a_parquet_timestamp_column_is_unix_seconds(tmp_path):
    path = tmp_path / "inter.parquet"
    seconds = [978300760, 978302109]
    stamps = pa.array([s * 1000 for s in seconds], pa.timestamp("ms"))
    pq.write_table(pa.table({"user": ["a", "b"], "item": ["x", "y"], "ts": stamps}), path)
    m = ColumnMapping(user="user", item="item", timestamp="ts")
    for reader in (load_table, load_table_rows):
        assert reader(path, mapping=m).interactions.timestamp.tolist() == seconds


def test_a_folder_is_read_with_its_sub_folders_and_empty_parts_add_nothing(tmp_path, caplog):
    (tmp_path / "day=1").mkdir()
    write_part(tmp_path / "day=1" / "part-0", [1, 2], [5, 6], "int64")
    (tmp_path / "day=2").mkdir()
    write_part(tmp_path / "day=2" / "part-0", [3], [5], "csv")
    (tmp_path / "day=2" / "empty.csv").write_text("user,item,rating,ts\n")
    (tmp_path / "zero.csv").write_bytes(b"")
    pq.write_table(pa.table({"user": pa.array([], pa.int64())}), tmp_path / "none.parquet")
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".part-0.csv.crc").write_text("not a part")
    with caplog.at_level("WARNING", logger="gnnrec"):
        graph = load_table(tmp_path, mapping=MAPPING)
    assert sorted(graph.users.ids) == ["1", "2", "3"] and len(graph.interactions) == 3
    assert "empty.csv: no data rows" in caplog.text and "zero.csv" in caplog.text
    assert load_table_rows(tmp_path, mapping=MAPPING).users.ids == graph.users.ids
    only_empty = tmp_path / "only-empty"
    only_empty.mkdir()
    (only_empty / "a.csv").write_text("user,item\n")
    with pytest.raises(DataError, match="every part of the folder is empty"):
        load_table(only_empty, mapping=ColumnMapping(user="user", item="item"))


def test_lightgcn_ids_far_beyond_the_others_add_no_phantom_nodes(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2\n1 0 999999999999\n")
    (tmp_path / "test.txt").write_text("0 999999999999\n")
    graph, split = load_lightgcn_split(tmp_path)
    assert list(graph.users.ids) == ["0", "1"]
    assert list(graph.items.ids) == ["0", "1", "2", "999999999999"]
    test = graph.interactions.item[split.test].tolist()
    assert [graph.items.ids[i] for i in test] == ["999999999999"]


def test_a_catalogue_with_a_repeated_id_is_named(tmp_path):
    row = "|Toy Story (1995)|01-Jan-1995||http://x" + "|0" * 19
    (tmp_path / "u.item").write_text(f"1{row}\n2{row}\n1{row}\n")
    (tmp_path / "u.data").write_text("7\t1\t5\t881250949\n")
    with pytest.raises(DataError, match="movie_id '1' appears twice") as err:
        load_ml_100k(tmp_path)
    assert f"{tmp_path / 'u.item'}:3" in str(err.value)
