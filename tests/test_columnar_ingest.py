"""The columnar table reader gives exactly the row-by-row reader's graph, or the same error."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnnrec.data import ColumnMapping, DataError, load_table, tabular
from gnnrec.data.columns import TextColumn
from gnnrec.data.table_rows import load_table_rows

# Ids with the characters readers disagree on: separators, quotes, Unicode spaces Python strips
# (\x1c, \xa0, \u3000), a newline inside a quoted value.
ID_CHARS = st.sampled_from(list("ab7 ,\"'\t\x1c\xa0\u3000é\n"))
STRING_IDS = st.text(ID_CHARS, min_size=1, max_size=4)
BAD_CELLS = {
    "user_id": ["", "   "],
    "rating": ["abc", "nan", "inf", "", "1_0", " 2.5 ", "NA"],
    "ts": ["1.5", "x", "", " 7", "+3"],
}


@st.composite
def tables(draw):
    """``(kind, columns, parts, item_table)``: interaction rows as cells, split into parts, maybe
    with one bad cell, a wrong field count, and an item table that may miss an item."""
    kind = draw(st.sampled_from([".csv", ".tsv", ".parquet"]))
    int_ids = kind == ".parquet" and draw(st.booleans())
    ids = st.integers(-3, 40) if int_ids else STRING_IDS
    users = draw(st.lists(ids, min_size=1, max_size=5, unique=True))
    items = draw(st.lists(ids, min_size=1, max_size=5, unique=True))
    n = draw(st.integers(1, 25))
    rows = [
        {
            "user_id": draw(st.sampled_from(users)),
            "item_id": draw(st.sampled_from(items)),
            "rating": str(draw(st.sampled_from([1, 2.5, 4.0, -0.5, 1e-3]))),
            "ts": str(draw(st.integers(0, 10**12))),
        }
        for _ in range(n)
    ]
    if draw(st.integers(0, 2)) == 0:
        column = draw(st.sampled_from(sorted(BAD_CELLS)))
        if not (int_ids and column == "user_id"):
            draw(st.sampled_from(rows))[column] = draw(st.sampled_from(BAD_CELLS[column]))
    short_row = kind != ".parquet" and draw(st.integers(0, 9)) == 0
    cut = sorted(draw(st.lists(st.integers(1, n - 1), max_size=2, unique=True))) if n > 1 else []
    parts = [rows[a:b] for a, b in zip([0, *cut], [*cut, n])]
    item_table = None
    if draw(st.booleans()):
        listed = [i for i in items if draw(st.integers(0, 9)) > 0]  # sometimes misses one
        extra = 999 if int_ids else "extra"
        item_table = {"item_id": [*listed, extra], "name": [f"item {i}" for i in listed] + [""]}
    return kind, parts, item_table, short_row


def _write(path: Path, kind: str, rows: list[dict], short_row: bool) -> None:
    columns = ["user_id", "item_id", "rating", "ts"]
    if kind == ".parquet":  # numbers typed where every cell parses, else strings
        typed = {c: [r[c] for r in rows] for c in columns}
        for column, parse in (("rating", float), ("ts", int)):
            try:
                typed[column] = [parse(v) for v in typed[column]]
            except ValueError:
                pass
        pq.write_table(pa.table(typed), path)
        return
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t" if kind == ".tsv" else ",")
        writer.writerow(columns)
        writer.writerows([[r[c] for c in columns] for r in rows])
        if short_row:
            writer.writerow(["u", "i"])


def _outcome(load, *args, **kwargs):
    try:
        graph = load(*args, **kwargs)
    except DataError as err:
        return "error", str(err)
    inter = graph.interactions
    return (
        list(graph.users.ids),
        list(graph.items.ids),
        {k: list(v) for k, v in graph.items.text_fields.items()},
        inter.user.tolist(),
        inter.item.tolist(),
        inter.rating.tolist(),
        inter.timestamp.tolist(),
    )


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=tables())
def test_columnar_equals_row_reader(tmp_path_factory, table):
    kind, parts, item_table, short_row = table
    folder = tmp_path_factory.mktemp("t")
    data = folder / "inter"
    data.mkdir()
    for n, rows in enumerate(parts):
        _write(data / f"part-{n}{kind}", kind, rows, short_row and n == len(parts) - 1)
    source = data if len(parts) > 1 else data / f"part-0{kind}"
    kwargs = {"mapping": ColumnMapping(rating="rating", timestamp="ts", item_text=["name"])}
    if item_table is not None:
        pq.write_table(pa.table(item_table), folder / "items.parquet")
        kwargs["items"] = folder / "items.parquet"
    assert _outcome(load_table, source, **kwargs) == _outcome(load_table_rows, source, **kwargs)


def _clean_table(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "user_id": [f"u{u}" for u in rng.integers(0, 50, rows)],
            "item_id": rng.integers(0, 30, rows),
            "rating": rng.integers(1, 6, rows).astype(float),
        }
    )
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_clean_tables_are_read_without_the_row_reader(tmp_path, suffix, monkeypatch):
    path = tmp_path / f"inter{suffix}"
    _clean_table(path, 500)
    expected = _outcome(load_table_rows, path, mapping=ColumnMapping(rating="rating"))

    def row_reader_called(*args, **kwargs):
        raise AssertionError("the row reader ran on a clean table")

    monkeypatch.setattr(tabular, "read_interaction_rows", row_reader_called)
    graph = load_table(path, mapping=ColumnMapping(rating="rating"))
    assert isinstance(graph.users.ids, TextColumn)
    assert _outcome(lambda: graph) == expected
    assert graph.num_users == len(set(graph.users.ids)) and graph.num_items <= 30


def test_bad_row_deep_in_a_part_is_named_by_file_and_line(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    for n in range(3):
        _clean_table(folder / f"part-{n}.csv", 2000)
    lines = (folder / "part-1.csv").read_text().splitlines()
    lines[1499] = '"u1",3,four'
    (folder / "part-1.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="rating 'four' is not a number") as err:
        load_table(folder, mapping=ColumnMapping(rating="rating"))
    assert str(err.value).startswith(f"{folder / 'part-1.csv'}:1500: ")


def test_parts_of_a_folder_are_one_table(tmp_path):
    whole = tmp_path / "whole.csv"
    _clean_table(whole, 900)
    lines = whole.read_text().splitlines()
    folder = tmp_path / "parts"
    folder.mkdir()
    for n, start in enumerate(range(1, 901, 300)):
        (folder / f"part-{n:05d}.csv").write_text(
            "\n".join([lines[0], *lines[start : start + 300]])
        )
    a, b = load_table(whole), load_table(folder)
    assert list(a.users.ids) == list(b.users.ids) and list(a.items.ids) == list(b.items.ids)
    assert np.array_equal(a.interactions.user, b.interactions.user)
    assert np.array_equal(a.interactions.item, b.interactions.item)


def test_text_column_is_a_sequence_of_str():
    column = TextColumn(pa.array(["a", "bc", "d"]))
    assert column[1] == "bc" and column[-1] == "d" and list(column[1:]) == ["bc", "d"]
    assert column == ["a", "bc", "d"] and column != ["a"] and "bc" in column
    with pytest.raises(IndexError):
        column[3]
    with pytest.raises(ValueError, match="missing"):
        TextColumn(pa.array(["a", None]))


def test_empty_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="no .csv, .tsv or .parquet parts"):
        load_table(tmp_path)
