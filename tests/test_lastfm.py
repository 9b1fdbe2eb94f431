"""The HetRec Last.fm layout (``data.dataset = "lastfm"``): plays as edge weights, friendships
as user–user edges, artist names as text; bad rows named with file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnrec.data import DataError
from gnnrec.data.config import DataConfig
from gnnrec.data.datasets import load_dataset
from gnnrec.data.lastfm import load_lastfm
from gnnrec.train.training_data import training_data

FIXTURE = Path(__file__).parent / "fixtures" / "lastfm"


def test_the_folder_loads_plays_friends_and_names():
    graph = load_lastfm(FIXTURE, plays_as_weight=True)
    rows = [
        line.split("\t") for line in (FIXTURE / "user_artists.dat").read_text().splitlines()[1:]
    ]
    assert graph.num_users == 24 and graph.num_items == 30 and len(graph.interactions) == len(rows)
    inter = graph.interactions
    first = (graph.users.ids[inter.user[0]], graph.items.ids[inter.item[0]], inter.weight[0])
    assert first == (rows[0][0], rows[0][1], float(rows[0][2]))
    assert graph.items.text_fields["name"][0] == "Metal Band 1"
    assert set(range(27, 30)).isdisjoint(inter.item)  # artists 28-30: cold items
    friends = graph.user_edges
    assert friends.shape == (2, 48)
    ids = np.asarray(graph.users.ids)
    assert all(int(a) % 3 == int(b) % 3 for a, b in zip(ids[friends[0]], ids[friends[1]]))
    assert load_lastfm(FIXTURE).interactions.weight is None  # plays kept only when asked


def test_plays_weigh_the_training_graph_and_friends_join_it():
    cfg = DataConfig(dataset="lastfm", path=str(FIXTURE), edge_weight="log1p(weight)")
    graph, split = load_dataset(cfg)
    store = training_data(graph, split, cfg.edge_weight_spec).graph
    played = {float(np.log1p(np.float32(w))) for w in (3, 40, 250, 1200, 9000)}
    values = store.csr.values.tolist()
    assert set(round(v, 5) for v in values) <= {round(p, 5) for p in played} | {1.0}
    friends = torch.as_tensor(graph.user_edges)
    assert bool(store.csr.contains(friends[0], friends[1]).all())
    assert bool(store.csr.contains(friends[1], friends[0]).all())  # both ways


@pytest.mark.parametrize(
    "file, line, text, message",
    [
        ("user_artists.dat", 3, "5\t2\t-4", "weight '-4' is negative"),
        ("user_artists.dat", 3, "5\t2\tmany", "weight 'many' is not a number"),
        ("user_artists.dat", 4, "5\t99\t10", "artistID '99' is not in artists.dat"),
        ("user_friends.dat", 2, "2\t777", "user '777' played nothing"),
        ("artists.dat", 3, "1\tAgain\tx\t", "artist '1' is listed twice"),
    ],
)
def test_bad_rows_are_named_with_file_and_line(tmp_path, file, line, text, message):
    folder = shutil.copytree(FIXTURE, tmp_path / "lastfm")
    lines = (folder / file).read_text().splitlines()
    lines[line - 1] = text
    (folder / file).write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        load_lastfm(folder)
    assert f"{folder / file}:{line}: " in str(err.value) and message in str(err.value)


def test_another_column_as_weight_is_refused():
    with pytest.raises(DataError, match="'plays', which this dataset does not have"):
        load_dataset(DataConfig(dataset="lastfm", path=str(FIXTURE), edge_weight="plays"))


def test_a_typed_run_on_it_trains(tmp_path, feature_cache):
    from gnnrec.config import load_config
    from gnnrec.run import train_run

    overrides = [
        f'run_dir="{tmp_path / "run"}"',
        "data.dataset=lastfm",
        f'data.path="{FIXTURE}"',
        'data.edge_weight="log1p(weight)"',
        "model.name=lightgcn",
        "model.text_features=false",
        "model.relations=typed",
        "model.hidden=16",
        "train.epochs=3",
        "train.batch_size=32",
        "train.progress=false",
        f'encoder.cache_dir="{feature_cache}"',
    ]
    metrics = train_run(load_config(None, overrides))
    assert 0.0 <= metrics["recall@20"] <= 1.0 and metrics["n_users_evaluated"] > 0
