"""Bad input gets an error that names the file and the line."""

from __future__ import annotations

import shutil

import pytest

from gnnrec.data import ColumnMapping, DataError, load_ml_latest_small, load_table
from gnnrec.data.movielens import bundled_ml_latest_small


@pytest.fixture
def ml_copy(tmp_path):
    folder = tmp_path / "ml"
    shutil.copytree(bundled_ml_latest_small(), folder)
    return folder


def _replace_line(path, line_no, text):
    lines = path.read_bytes().split(b"\n")
    lines[line_no - 1] = text
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"1,1,4.0", "expected 4 fields"),
        (b"1,999999999,4.0,964982703", "movieId '999999999' is not in the item table"),
        (b"1,1,nan,964982703", "rating is 'nan'"),
        (b"1,1,four,964982703", "rating 'four' is not a number"),
        (b"1,1,4.0,yesterday", "timestamp 'yesterday' is not an integer"),
    ],
)
def test_bad_rating_rows_name_file_and_line(ml_copy, bad, message):
    _replace_line(ml_copy / "ratings.csv", 1000, bad)
    with pytest.raises(DataError) as err:
        load_ml_latest_small(ml_copy)
    assert f"{ml_copy / 'ratings.csv'}:1000: " in str(err.value)
    assert message in str(err.value)
    assert err.value.line == 1000


def test_undecodable_text_names_the_line(ml_copy):
    _replace_line(ml_copy / "movies.csv", 7, b"6,Heat \xff (1995),Action")
    with pytest.raises(DataError, match=r"movies.csv:7: cannot decode byte 0xff"):
        load_ml_latest_small(ml_copy)


@pytest.mark.parametrize(
    "content, message",
    [(b"", "file is empty"), (b"userId,movieId,rating,timestamp\n", "no data rows")],
)
def test_empty_files(ml_copy, content, message):
    (ml_copy / "ratings.csv").write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_ml_latest_small(ml_copy)


def test_missing_column_is_named(ml_copy):
    _replace_line(ml_copy / "ratings.csv", 1, b"userId,movie,rating,timestamp")
    with pytest.raises(DataError, match=r"ratings.csv:1: missing column\(s\) \['movieId'\]"):
        load_ml_latest_small(ml_copy)


def test_unknown_user_in_table_names_the_line(tmp_path):
    (tmp_path / "users.csv").write_text("user_id,bio\na,likes tea\n")
    (tmp_path / "inter.csv").write_text("user_id,item_id\na,x\nb,x\n")
    with pytest.raises(DataError, match=r"inter.csv:3: unknown user 'b'"):
        load_table(
            tmp_path / "inter.csv",
            users=tmp_path / "users.csv",
            mapping=ColumnMapping(user_text=["bio"]),
        )


def test_duplicate_node_ids_are_rejected(tmp_path):
    (tmp_path / "items.csv").write_text("item_id,title\nx,A\nx,B\n")
    (tmp_path / "inter.csv").write_text("user_id,item_id\na,x\n")
    with pytest.raises(DataError, match=r"items.csv:3: item_id 'x' appears twice"):
        load_table(tmp_path / "inter.csv", items=tmp_path / "items.csv")
