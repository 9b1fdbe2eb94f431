"""The load-once handle (``gnnrec.load``): its answers equal the run's recommendation table,
new users folded in from their items get their genre, recorded interactions take effect at once
and are never recommended back, similar items and users are the nearest by cosine, and bad
input is refused naming what is wrong."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch

import gnnrec
from gnnrec.serve.handle import UnknownIds

GENRE_ITEMS = {
    genre: [f"i{g}_{k}" for k in range(15)]
    for g, genre in enumerate(["space", "cooking", "horses", "pirates"])
}


@pytest.fixture(scope="module")
def runs(model_runs) -> dict:
    return model_runs


def _table(path) -> dict[str, list[tuple[str, float]]]:
    rows: dict[str, list[tuple[str, float]]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            rows.setdefault(row["user_id"], []).append((row["item_id"], float(row["score"])))
    return rows


@pytest.mark.parametrize("name", ["gcn", "lightgcn", "gat", "mf"])
def test_the_handle_answers_as_the_recommendation_table(runs, name):
    handle = gnnrec.load(runs[name])
    table = _table(runs[name] / "recommendations.csv")
    answers = handle.recommend(list(table), k=10)
    assert answers.keys() == table.keys()
    for user, expected in table.items():
        got = answers[user]
        assert len(got) == len(expected)
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=2e-6)
        # the same items, in the same order but among scores equal to fp32 rounding
        for (item, score), (want, want_score) in zip(got, expected):
            assert item == want or abs(score - want_score) < 2e-6, (user, got, expected)


@pytest.mark.parametrize("name", ["gcn", "lightgcn", "gat", "mf"])
def test_a_new_user_folded_in_from_items_gets_their_genre(runs, name):
    handle = gnnrec.load(runs[name])
    for genre, items in GENRE_ITEMS.items():
        liked = items[:5]
        top = [item for item, _ in handle.recommend_for_items(liked, k=5)]
        assert not set(top) & set(liked)  # what they have is never recommended
        assert sum(item in items for item in top) >= 3, (name, genre, top)  # random: 1.25


@pytest.mark.parametrize("name", ["gcn", "lightgcn", "gat", "mf"])
def test_new_users_folded_in_together_get_what_each_gets_alone(runs, name):
    """The service batches fold-in requests: B new users at once rank as each one alone."""
    handle = gnnrec.load(runs[name])
    lists = [items[:n] for n, items in zip((3, 5, 1), GENRE_ITEMS.values())]
    texts = ["I love space adventures", None, None] if name == "gcn" else None
    together = handle.recommend_for_item_lists(lists, k=7, texts=texts)
    for n, items in enumerate(lists):
        alone = handle.recommend_for_items(items, k=7, text=texts[n] if texts else None)
        assert [i for i, _ in together[n]] == [i for i, _ in alone]
        assert [s for _, s in together[n]] == pytest.approx([s for _, s in alone], rel=1e-4)
    with pytest.raises(ValueError, match="2 item lists but 1 texts"):
        handle.recommend_for_item_lists(lists[:2], texts=[None])


def test_recorded_interactions_are_folded_in_at_once(runs):
    handle = gnnrec.load(runs["lightgcn"])
    cooking = GENRE_ITEMS["cooking"]
    assert not handle.knows_user("newcomer")
    handle.record("newcomer", cooking[:3])
    first = handle.recommend(["newcomer"], k=5)["newcomer"]
    assert sum(item in cooking for item, _ in first) >= 4
    handle.record("newcomer", [first[0][0]])  # acts on the first recommendation
    second = [item for item, _ in handle.recommend(["newcomer"], k=60)["newcomer"]]
    assert first[0][0] not in second and not set(cooking[:3]) & set(second)
    assert handle.seen_items("newcomer") == sorted([*cooking[:3], first[0][0]], key=cooking.index)
    assert len(second) == 60 - 4  # k past the unseen items: all of them, none padded

    known = handle.user_ids[0]
    before = handle.recommend([known], k=3)[known]
    handle.record(known, [before[0][0]])
    after = [item for item, _ in handle.recommend([known], k=3)[known]]
    assert before[0][0] not in after
    assert before[0][0] in handle.seen_items(known)


def test_a_known_user_recorded_with_their_own_items_keeps_their_embedding(runs):
    handle = gnnrec.load(runs["gat"])
    user = handle.user_ids[3]
    expected = handle.recommend([user], k=10)[user]
    handle.record(user, handle.seen_items(user)[:2])  # nothing new: the same edges
    got = handle.recommend([user], k=10)[user]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_similar_items_and_users_are_the_nearest_by_cosine(runs):
    handle = gnnrec.load(runs["lightgcn"])
    z = torch.nn.functional.normalize(handle.z, dim=1).numpy()
    U = handle.num_users
    item = "i2_4"
    row = list(handle.item_ids).index(item)
    similarity = z[U:] @ z[U + row]
    similarity[row] = -np.inf
    expected = [handle.item_ids[i] for i in np.argsort(-similarity, kind="stable")[:5]]
    got = handle.similar_items([item], k=5)[item]
    assert [i for i, _ in got] == expected
    np.testing.assert_allclose([s for _, s in got], np.sort(similarity)[::-1][:5], rtol=1e-5)
    horses = handle.similar_items(["i2_0"], k=5)["i2_0"]
    assert sum(i in GENRE_ITEMS["horses"] for i, _ in horses) >= 4

    user = handle.user_ids[0]
    peers = handle.similar_users([user], k=5)[user]
    assert user not in [u for u, _ in peers] and len(peers) == 5
    similarity = z[:U] @ z[0]
    similarity[0] = -np.inf
    assert [u for u, _ in peers] == [
        handle.user_ids[i] for i in np.argsort(-similarity, kind="stable")[:5]
    ]


def test_bad_input_is_refused_naming_it(runs):
    handle = gnnrec.load(runs["lightgcn"])
    with pytest.raises(UnknownIds, match="unknown item id.*'nope'") as err:
        handle.recommend_for_items(["i0_1", "nope"])
    assert err.value.ids == ["nope"] and err.value.kind == "item"
    with pytest.raises(UnknownIds, match="unknown user id.*'ghost'"):
        handle.recommend(["ghost"])
    with pytest.raises(ValueError, match="items is empty"):
        handle.recommend_for_items([])
    with pytest.raises(ValueError, match="k must be at least 1"):
        handle.recommend([handle.user_ids[0]], k=0)
    with pytest.raises(TypeError, match="k must be an integer"):
        handle.similar_items(["i0_1"], k=True)
    with pytest.raises(TypeError, match="items must be a list of ids"):
        handle.recommend_for_items("i0_1")
    with pytest.raises(ValueError, match="uses no text features"):
        handle.recommend_for_text("a space story")
    with pytest.raises(ValueError, match="uses no text features"):
        handle.recommend_for_items(["i0_1"], text="space")
    with pytest.raises(UnknownIds):
        handle.record("someone", ["i0_1", "missing"])
    assert not handle.knows_user("someone")  # nothing recorded from a refused call
    with pytest.raises(UnknownIds, match="unknown user id.*'someone'"):
        handle.seen_items("someone")  # not an empty history
    with pytest.raises(UnknownIds, match="unknown item id.*'missing'"):
        handle.title("missing")


def test_the_cli_recommends_for_items_and_prints_similar_items(runs):
    def gnnrec_cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "gnnrec", *args], capture_output=True, text=True, check=True
        ).stdout

    out = gnnrec_cli(
        "recommend", "--run-dir", str(runs["gcn"]), "--items", "i3_0", "i3_1", "-k", "4"
    )
    items = [line.split("\t")[0] for line in out.strip().splitlines()]
    assert len(items) == 4 and sum(i.startswith("i3_") for i in items) >= 3
    assert not {"i3_0", "i3_1"} & set(items)
    out = gnnrec_cli("similar", "--run-dir", str(runs["gcn"]), "--items", "i1_0", "-k", "3")
    lines = out.strip().splitlines()
    assert lines[0].split("\t") == ["query", "rank", "id", "similarity", "title"]
    assert [line.split("\t")[:2] for line in lines[1:]] == [
        ["i1_0", "1"],
        ["i1_0", "2"],
        ["i1_0", "3"],
    ]
