"""RecBole atomic files read directly: ``.inter`` with ``.user``/``.item`` (text for the nodes),
``name:type`` headers, unrated items kept as text-only nodes, errors naming file and line, and
a run trained on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gnnrec.cli import main
from gnnrec.data import DataError
from gnnrec.data.recbole import RecBoleOptions, load_recbole


def write_atomic(folder: Path, inter: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = inter or [
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
        "196\t242\t3\t881250949",
        "186\t302\t3\t891717742",
        "196\t302\t5\t881250950.0",
        "22\t242\t1\t878887116",
    ]
    (folder / "ml.inter").write_text("\n".join(lines) + "\n")
    (folder / "ml.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        '242\tKolya "the boy"\t1996\tComedy\n'
        "302\tL.A. Confidential\t1997\tCrime Film-Noir\n"
        "999\tNever Rated\t2001\tDrama\n"
    )
    (folder / "ml.user").write_text(
        "user_id:token\tage:token\tgender:token\toccupation:token\n"
        "196\t49\tM\twriter\n186\t39\tF\texecutive\n22\t25\tM\twriter\n"
    )
    return folder


def test_the_atomic_files_make_the_graph(tmp_path):
    graph = load_recbole(write_atomic(tmp_path / "ml"))
    assert list(graph.users.ids) == ["196", "186", "22"]
    assert list(graph.items.ids) == ["242", "302", "999"]  # 999: text only, never rated
    assert graph.items.text_fields["movie_title"][0] == 'Kolya "the boy"'  # no quoting
    assert graph.users.text_fields["occupation"] == ["writer", "executive", "writer"]
    inter = graph.interactions
    assert inter.user.tolist() == [0, 1, 0, 2] and inter.item.tolist() == [0, 1, 1, 0]
    assert inter.rating.tolist() == [3.0, 3.0, 5.0, 1.0]
    assert inter.timestamp.tolist() == [881250949, 891717742, 881250950, 878887116]


@pytest.mark.parametrize(
    "lines, message, line",
    [
        (["user_id\titem_id:token", "1\t2"], "header field 'user_id' is not name:type", 1),
        (["user_id:token\titem_id:string", "1\t2"], "header field 'item_id:string'", 1),
        (["user_id:token\titem_id:token", "196\t777"], "item_id '777' is not in ml.item", 2),
        (["user_id:token\titem_id:token", "196"], "1 fields, the header has 2", 2),
        (["user_id:token\titem_id:token\trating:float", "196\t242\tgood"], "rating", 2),
    ],
)
def test_bad_atomic_files_are_named_with_their_line(tmp_path, lines, message, line):
    folder = write_atomic(tmp_path / "ml", lines)
    with pytest.raises(DataError, match=message) as err:
        load_recbole(folder)
    assert f"{folder / 'ml.inter'}:{line}" in str(err.value)


def test_a_run_trains_on_recbole_files(tmp_path):
    rng = np.random.default_rng(0)
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    pairs = {(u, int(i)) for u in range(30) for i in rng.choice(40, 8, replace=False)}
    lines = [f"u{u}\ti{i}\t{1 + (u + i) % 5}\t{1000 + n}" for n, (u, i) in enumerate(pairs)]
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ml.inter").write_text("\n".join([header, *lines]) + "\n")
    assert load_recbole(folder, RecBoleOptions(name="ml")).num_users == 30
    args = ["train", "--run-dir", str(tmp_path / "run")]
    for item in (
        "data.dataset=recbole",
        f'data.path="{folder}"',
        "model.text_features=false",
        "model.hidden=8",
        "train.epochs=1",
        "train.progress=false",
    ):
        args += ["--set", item]
    assert main(args) == 0
