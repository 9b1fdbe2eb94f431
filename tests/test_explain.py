"""Explanations of a trained run through the handle and ``gnnrec explain``: the parts add up
to the score the handle ranks by, the sentence names only the evidence, users folded in are
explained by what they have now, and bad input is refused naming what is wrong."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import error_line

import gnnrec
from gnnrec.cli import main
from gnnrec.explain.evidence import EXACT, GIVEN_ATTENTION
from gnnrec.explain.run_evidence import SIMILARITY
from gnnrec.serve.handle import UnknownIds


@pytest.fixture(scope="module")
def runs(model_runs) -> dict:
    return model_runs


def _top_pairs(handle, users: int = 10) -> list[tuple[str, str]]:
    chosen = list(handle.user_ids[:users])
    return [(u, ranked[0][0]) for u, ranked in handle.recommend(chosen, k=1).items()]


@pytest.mark.parametrize(
    "name,method", [("gcn", EXACT), ("lightgcn", EXACT), ("gat", GIVEN_ATTENTION)]
)
def test_the_parts_add_up_to_the_score_the_handle_ranks_by(runs, name, method):
    handle = gnnrec.load(runs[name])
    pairs = _top_pairs(handle)
    ranked = handle.recommend([u for u, _ in pairs], k=1)
    for e in handle.explain_pairs(pairs, k=3):
        assert e.method == method
        assert e.score == pytest.approx(ranked[e.user][0][1], abs=1e-5)
        parts = e.own + sum(t.contribution for t in e.history) + e.rest
        assert parts == pytest.approx(e.score, abs=1e-4)
        assert len(e.history) == min(3, e.history_size)
        assert [t.contribution for t in e.history] == sorted(
            (t.contribution for t in e.history), reverse=True
        )
        seen = set(handle.seen_items(e.user))
        assert {t.node for t in e.history} <= seen  # evidence is the user's own items
        for t in e.history:  # "also rated": users with both, counted from the data
            with_both = sum(
                1
                for other in handle.user_ids
                if other != e.user and {t.node, e.item} <= set(handle.seen_items(other))
            )
            assert e.also_rated[t.node] == with_both
        for t in e.paths:  # each path starts at a history item the user has
            assert t.node in seen
    # batched and one at a time: the same numbers
    one = handle.explain(*pairs[0], k=3)
    assert one.score == pytest.approx(handle.explain_pairs(pairs, k=3)[0].score, abs=1e-6)


def test_the_text_share_splits_the_score(runs):
    handle = gnnrec.load(runs["gcn"])
    for e in handle.explain_pairs(_top_pairs(handle, 5)):
        assert e.text is not None
        assert sum(e.text.values()) == pytest.approx(e.score, abs=1e-4)
    ids_only = gnnrec.load(runs["lightgcn"])
    assert ids_only.explain(*_top_pairs(ids_only)[0]).text is None


def test_the_sentence_names_only_the_evidence(runs):
    handle = gnnrec.load(runs["lightgcn"])
    for e in handle.explain_pairs(_top_pairs(handle)):
        named = set(re.findall(r"A \w+ story number \d+", e.sentence))  # planted titles
        assert named and named <= {t.title for t in e.history} | {e.title}, e.sentence
        positive = [t for t in e.history if t.contribution > 0]
        if positive:
            assert positive[0].title in e.sentence


def test_mf_is_explained_by_similarity_and_says_so(runs):
    handle = gnnrec.load(runs["mf"])
    e = handle.explain(*_top_pairs(handle)[0])
    assert e.method == SIMILARITY and e.own == pytest.approx(e.score)
    assert e.history and e.history[0].contribution >= e.history[-1].contribution


def test_a_folded_in_user_is_explained_by_what_they_have_now(runs):
    handle = gnnrec.load(runs["lightgcn"])
    handle.record("newcomer", ["i0_1", "i0_2", "i0_3"])
    item = handle.recommend(["newcomer"], k=1)["newcomer"][0][0]
    e = handle.explain("newcomer", item, k=10)
    assert {t.node for t in e.history} == {"i0_1", "i0_2", "i0_3"}
    assert e.own + sum(t.contribution for t in e.history) == pytest.approx(e.score, abs=1e-4)
    gat = gnnrec.load(runs["gat"])
    gat.record("newcomer", ["i0_1"])
    item = gat.recommend(["newcomer"], k=1)["newcomer"][0][0]
    with pytest.raises(ValueError, match="folded in"):
        gat.explain("newcomer", item)


def test_bad_input_is_refused_naming_it(runs):
    handle = gnnrec.load(runs["lightgcn"])
    user = handle.user_ids[0]
    with pytest.raises(UnknownIds, match="nobody"):
        handle.explain("nobody", "i0_1")
    with pytest.raises(UnknownIds, match="zzz"):
        handle.explain(user, "zzz")
    with pytest.raises(ValueError, match="never recommended"):
        handle.explain(user, handle.seen_items(user)[0])
    with pytest.raises(ValueError, match="k"):
        handle.explain(user, "i0_1", k=0)
    with pytest.raises(ValueError, match="paths"):
        handle.explain(user, "i0_1", paths=-1)


def test_the_command_prints_and_writes_explanations(runs, tmp_path, capsys):
    run = str(runs["lightgcn"])
    handle = gnnrec.load(runs["lightgcn"])
    user = handle.user_ids[0]
    assert main(["explain", "--run-dir", run, "--user", user, "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("Recommended") == 2 and "(exact)" in out
    pairs = tmp_path / "pairs.csv"
    chosen = _top_pairs(handle, 4)
    pairs.write_text("user_id,item_id\n" + "".join(f"{u},{i}\n" for u, i in chosen))
    target = tmp_path / "why.jsonl"
    assert main(["explain", "--run-dir", run, "--pairs", str(pairs), "--output", str(target)]) == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [(r["user"], r["item"]) for r in rows] == chosen
    assert all(r["sentence"] for r in rows)
    np.testing.assert_allclose(
        [r["score"] for r in rows], [handle.explain(u, i).score for u, i in chosen], atol=1e-6
    )
    # an existing output is never replaced; a bad pairs file names its line
    before = target.read_bytes()
    code = main(["explain", "--run-dir", run, "--pairs", str(pairs), "--output", str(target)])
    assert "exists" in error_line(capsys, code) and target.read_bytes() == before
    pairs.write_text("user_id,item_id\nu1,i0_1\nu2\n")
    code = main(["explain", "--run-dir", run, "--pairs", str(pairs), "--json"])
    assert "line 3" in error_line(capsys, code)
    pairs.write_text("who,what\nu1,i0_1\n")
    code = main(["explain", "--run-dir", run, "--pairs", str(pairs)])
    assert "line 1" in error_line(capsys, code)
    code = main(["explain", "--run-dir", run, "--user", "nobody", "--items", "i0_1"])
    assert "nobody" in error_line(capsys, code)
