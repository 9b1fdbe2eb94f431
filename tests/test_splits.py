"""Seeded splits, and user text that never sees the test interactions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnrec.data import load_ml_latest_small, split_interactions, user_texts_from_interactions
from gnnrec.data.splits import latest_holdout, random_holdout


@pytest.fixture(scope="module")
def graph():
    return load_ml_latest_small()


def _partition_ok(split, n):
    parts = np.concatenate([split.train, split.valid, split.test])
    assert len(parts) == n and len(np.unique(parts)) == n


def test_random_split_is_per_user_and_seeded(graph):
    split = split_interactions(graph, "random", test_fraction=0.2, seed=3)
    _partition_ok(split, len(graph.interactions))
    users = graph.interactions.user
    per_user_total = np.bincount(users, minlength=graph.num_users)
    per_user_test = np.bincount(users[split.test], minlength=graph.num_users)
    assert np.all(np.abs(per_user_test - 0.2 * per_user_total) <= 0.5 + 1e-9)
    again = split_interactions(graph, "random", test_fraction=0.2, seed=3)
    other = split_interactions(graph, "random", test_fraction=0.2, seed=4)
    assert np.array_equal(split.test, again.test)
    assert not np.array_equal(split.test, other.test)


def test_temporal_split_holds_out_each_users_latest(graph):
    split = split_interactions(graph, "temporal", temporal_k=3, valid_fraction=0.0)
    inter = graph.interactions
    for user in range(0, graph.num_users, 37):
        mine_test = split.test[inter.user[split.test] == user]
        mine_train = split.train[inter.user[split.train] == user]
        assert len(mine_test) == 3
        assert inter.timestamp[mine_test].min() >= inter.timestamp[mine_train].max()


def test_cold_item_split_keeps_held_out_items_out_of_training(graph):
    split = split_interactions(graph, "cold_items", cold_item_fraction=0.1, seed=1)
    _partition_ok(split, len(graph.interactions))
    inter = graph.interactions
    test_items = set(inter.item[split.test].tolist())
    assert not test_items & set(inter.item[split.train].tolist())
    assert not test_items & set(inter.item[split.valid].tolist())
    rated = len(np.unique(inter.item))
    assert len(test_items) == round(0.1 * rated)
    assert split.cold_items(graph).sum() == len(test_items)


def test_new_user_split_holds_users_out_of_training_with_randoms_test_set(graph):
    split = split_interactions(graph, "new_users", new_user_fraction=0.1, seed=2)
    same = split_interactions(graph, "random", seed=2)
    inter = graph.interactions
    new = split.new_users(graph)
    assert len(new) == round(0.1 * len(np.unique(inter.user[same.test])))
    assert np.array_equal(split.test, same.test)  # compared user for user with `random`
    mine = np.isin(inter.user[same.train], new)
    assert np.array_equal(np.sort(split.fold_in), np.sort(same.train[mine]))
    assert np.array_equal(np.sort(split.train), np.sort(same.train[~mine]))
    assert not np.isin(inter.user[np.concatenate([split.train, split.valid])], new).any()
    parts = np.concatenate([split.train, split.valid, split.test, split.fold_in])
    assert len(np.unique(parts)) == len(parts)


def test_user_text_uses_training_interactions_only(graph):
    split = split_interactions(graph, "random", seed=0)
    texts = user_texts_from_interactions(graph, split.train, max_items=10_000)
    titles = graph.items.text_fields["title"]
    inter = graph.interactions
    for user in range(0, graph.num_users, 61):
        train_titles = {titles[i] for i in inter.item[split.train][inter.user[split.train] == user]}
        test_titles = {titles[i] for i in inter.item[split.test][inter.user[split.test] == user]}
        text = texts[user]
        assert all(t in text for t in train_titles)
        # A test title may only appear as part of a training title (e.g. "Alien" in "Aliens").
        assert all(t not in text or any(t in s for s in train_titles) for t in test_titles)
    # And training on more data changes the text: it is built from the index it is given.
    assert texts != user_texts_from_interactions(graph, np.arange(len(inter)), 10_000)


user_logs = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(log=user_logs, fraction=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]), seed=st.integers(0, 9))
def test_random_holdout_holds_out_each_users_share(log, fraction, seed):
    user = np.asarray(log[0])
    index = np.flatnonzero(np.asarray(log[1]) > 0)  # a subset, as for the validation carve
    keep, held = random_holdout(index, user, fraction, np.random.default_rng(seed))
    assert np.array_equal(np.sort(np.concatenate([keep, held])), index)
    for u in np.unique(user[index]):
        n = int((user[index] == u).sum())
        assert (user[held] == u).sum() == min(round(fraction * n), n - 1)
    again = random_holdout(index, user, fraction, np.random.default_rng(seed))
    assert np.array_equal(held, again[1])


@settings(max_examples=60, deadline=None)
@given(log=user_logs, k=st.integers(1, 4))
def test_latest_holdout_equals_a_loop_over_users(log, k):
    user, timestamp = np.asarray(log[0]), np.asarray(log[1])
    kept, held = latest_holdout(user, timestamp, k)
    expected = []
    for u in np.unique(user):
        mine = np.flatnonzero(user == u)
        mine = mine[np.argsort(timestamp[mine], kind="stable")]
        expected.extend(mine[len(mine) - min(k, len(mine) - 1) :])
    assert np.array_equal(held, np.sort(np.asarray(expected, dtype=np.int64)))
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(user)))


@settings(max_examples=30, deadline=None)
@given(log=user_logs, chunk=st.integers(1, 7), seed=st.integers(0, 9))
def test_holdouts_do_not_depend_on_the_chunk_size(log, chunk, seed):
    import gnnrec.data.splits as splits

    user, timestamp = np.asarray(log[0]), np.asarray(log[1])
    index = np.arange(len(user))
    whole = (
        random_holdout(index, user, 0.3, np.random.default_rng(seed)),
        latest_holdout(user, timestamp, 2),
    )
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(splits, "CHUNK", chunk)
        chunked = (
            random_holdout(index, user, 0.3, np.random.default_rng(seed)),
            latest_holdout(user, timestamp, 2),
        )
    for a, b in zip(whole, chunked, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), max_size=40)
)
def test_last_of_each_pair_keeps_the_latest_row_of_every_pair(pairs):
    from gnnrec.data.textgraph import Interactions

    user, item, time = (np.array([p[k] for p in pairs], dtype=np.int64) for k in range(3))
    inter = Interactions(user, item, np.ones(len(pairs)), time)
    latest = {}  # (user, item) -> row: the latest by timestamp, the later row on ties
    for row, (u, i, t) in enumerate(pairs):
        if (u, i) not in latest or t >= pairs[latest[u, i]][2]:
            latest[u, i] = row
    assert inter.last_of_each_pair().tolist() == sorted(latest.values())
