"""Full-ranking metrics (accuracy, exposure, popularity, personalization) against a
brute-force, one-user-at-a-time implementation."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.train.metrics import full_ranking_metrics, popularity_scores, rating_metrics


def _brute_force(scores, train, test, k, candidates):
    recall = ndcg = precision = hit = mrr = f1 = popularity = 0.0
    users = sorted({u for u, i in test if candidates[i]})
    counts = np.bincount([i for _, i in train], minlength=scores.shape[1])
    lists = []
    for u in users:
        relevant = {i for uu, i in test if uu == u and candidates[i]}
        seen = {i for uu, i in train if uu == u}
        ranked = sorted(
            (i for i in range(scores.shape[1]) if i not in seen and candidates[i]),
            key=lambda i: -scores[u, i],
        )[:k]
        lists.append(set(ranked))
        hits = [1.0 if i in relevant else 0.0 for i in ranked]
        recall += sum(hits) / len(relevant)
        precision += sum(hits) / k
        hit += float(sum(hits) > 0)
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        ndcg += dcg / sum(1 / math.log2(r + 2) for r in range(min(k, len(relevant))))
        mrr += next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0)
        p, r = sum(hits) / k, sum(hits) / len(relevant)
        f1 += 2 * p * r / (p + r) if p + r else 0.0
        popularity += float(np.mean([counts[i] for i in ranked])) if ranked else 0.0
    n = len(users)
    shown = np.array([sum(i in own for own in lists) for i in np.flatnonzero(candidates)])
    gini = np.abs(shown[:, None] - shown[None, :]).sum() / (2 * len(shown) * shown.sum())
    width = min(k, scores.shape[1])
    overlaps = [len(a & b) / width for x, a in enumerate(lists) for b in lists[x + 1 :]]
    return {
        "recall": recall / n,
        "ndcg": ndcg / n,
        "precision": precision / n,
        "hitrate": hit / n,
        "mrr": mrr / n,
        "f1": f1 / n,
        "popularity": popularity / n,
        "coverage": float((shown > 0).mean()),
        "gini": gini if shown.sum() else 0.0,
        "personalization": 1 - float(np.mean(overlaps)) if overlaps else 0.0,
    }, n


def as_arrays(pairs):
    return (
        np.array([p[0] for p in pairs], dtype=np.int64),
        np.array([p[1] for p in pairs], dtype=np.int64),
    )


# K may exceed the catalogue; max_scores < 3 x 15 scores the items in blocks of >= K
@given(st.integers(0, 2**16), st.integers(1, 20), st.booleans(), st.integers(1, 60))
def test_metrics_equal_brute_force(seed, k, restrict, max_scores):
    rng = np.random.default_rng(seed)
    n_users, n_items = 7, 15
    pairs = {
        (int(u), int(i)) for u, i in zip(rng.integers(0, n_users, 50), rng.integers(0, n_items, 50))
    }
    pairs = sorted(pairs)
    is_test = rng.random(len(pairs)) < 0.3
    train = [p for p, t in zip(pairs, is_test) if not t]
    test = [p for p, t in zip(pairs, is_test) if t]
    if not test:
        return
    scores = torch.from_numpy(rng.standard_normal((n_users, n_items))).float()
    candidates = rng.random(n_items) < 0.7 if restrict else np.ones(n_items, dtype=bool)
    if not any(candidates[i] for _, i in test):
        return
    got = full_ranking_metrics(
        lambda b, items: scores[b][:, items],
        as_arrays(train),
        as_arrays(test),
        n_users,
        n_items,
        ks=(k,),
        candidates=candidates if restrict else None,
        batch_size=3,
        max_scores=max_scores,
    )
    expected, n = _brute_force(scores.numpy(), train, test, k, candidates)
    assert got["n_users_evaluated"] == n
    for name, value in expected.items():
        assert abs(got[f"{name}@{k}"] - value) < 1e-9, name


def test_popularity_ranks_by_training_counts():
    score = popularity_scores(np.array([2, 2, 2, 0, 1, 1]), 4)
    assert score(torch.tensor([0, 5]), torch.arange(4)).tolist() == [[1, 2, 3, 0]] * 2
    assert score(torch.tensor([1]), torch.tensor([2, 0])).tolist() == [[3, 1]]


def test_rating_metrics():
    got = rating_metrics(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([2.0, 2.0, 2.0]))
    assert abs(got["mae"] - 1.0) < 1e-12 and abs(got["rmse"] - math.sqrt(5 / 3)) < 1e-12


def test_rating_biases_recover_planted_offsets():
    from gnnrec.train.baselines import fit_rating_biases

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 4000), rng.integers(0, 30, 4000)
    user_offset, item_offset = rng.normal(0, 0.5, 20), rng.normal(0, 0.5, 30)
    ratings = 3.5 + user_offset[users] + item_offset[items] + rng.normal(0, 0.1, 4000)
    biases = fit_rating_biases(users, items, ratings, 20, 30, reg=1.0, sweeps=30)
    error = biases.predict(users, items) - ratings
    assert np.sqrt(np.mean(error**2)) < 0.12  # close to the 0.1 noise floor
    assert np.corrcoef(biases.item_bias, item_offset)[0, 1] > 0.98


def test_ties_are_broken_at_random_not_by_item_id():
    rng = np.random.default_rng(1)
    n_users, n_items = 300, 100
    # Test items crowd the low ids: an index-order tie-break would find them all.
    test_users = np.repeat(np.arange(n_users), 5)
    test_items = rng.integers(0, 10, test_users.size)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    got = full_ranking_metrics(
        lambda b, items: torch.zeros(len(b), len(items)),
        empty,
        (test_users, test_items),
        n_users,
        n_items,
        ks=(10,),
    )
    assert got["recall@10"] < 0.5  # by item id it would be 1.0: the top 10 ids hold every test item
