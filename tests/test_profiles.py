"""Generated user profiles (``gnnrec profile``): one a user from their training-period items
through the real transformers path (a tiny random model), validated, cached; a run killed with
SIGKILL part-way and started again generates only what is missing and ends with the same file;
Ray Data actors write the same file; ``data.user_text = "profile"`` trains on them; a file that
lacks users or holds a bad line is refused naming it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import error_line, planted_config, planted_overrides
from tiny_llm import write_tiny_llm

from gnnrec.cli import main
from gnnrec.config import load_config
from gnnrec.data.updates import load_updated
from gnnrec.data.user_text import node_texts
from gnnrec.explain.profiles import profile_item_rows
from gnnrec.explain.validation import SentenceValidator
from gnnrec.run import train_run


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    return write_tiny_llm(tmp_path_factory.mktemp("tiny-llm"))


def _argv(planted_dir, feature_cache, tiny_llm, output, cache, *extra):
    argv = ["profile", "--output", str(output), "--generator-model", str(tiny_llm)]
    argv += ["--generator-cache", str(cache), *extra]
    for o in planted_overrides(planted_dir, feature_cache):
        argv += ["--set", o]
    return argv


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_profiles_are_written_cached_and_trained_on(
    planted_dir, feature_cache, tiny_llm, tmp_path, capsys
):
    out = tmp_path / "profiles.jsonl"
    assert main(_argv(planted_dir, feature_cache, tiny_llm, out, tmp_path / "cache")) == 0
    assert "profiles: " in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 48 and len({r["user"] for r in rows}) == 48
    assert all(r["profile"] for r in rows) and any(r["generated"] for r in rows)
    again = tmp_path / "again.jsonl"
    assert main(_argv(planted_dir, feature_cache, tiny_llm, again, tmp_path / "cache")) == 0
    assert "(48 answers from the cache)" in capsys.readouterr().out
    assert again.read_bytes() == out.read_bytes()
    # data.user_text = "profile": the users' texts are the profiles, and a run trains on them
    config = planted_config(
        planted_dir, feature_cache, tmp_path / "run",
        "data.user_text=profile", f'data.profiles_path="{out}"',
    )  # fmt: skip
    graph, split = load_updated(config.data)
    texts = node_texts(graph, split, config.data)
    assert texts[: graph.num_users] == [r["profile"] for r in rows]
    metrics = train_run(config)
    assert 0 <= metrics["recall@20"] <= 1
    # an existing output is never replaced
    before = out.read_bytes()
    code = main(_argv(planted_dir, feature_cache, tiny_llm, out, tmp_path / "cache"))
    assert "exists" in error_line(capsys, code) and out.read_bytes() == before


def test_a_held_out_user_is_profiled_from_their_training_period_items(
    planted_dir, feature_cache, tmp_path
):
    config = planted_config(planted_dir, feature_cache, tmp_path / "run", "data.split=new_users")
    graph, split = load_updated(config.data)
    rows = profile_item_rows(graph, split, max_items=1000)
    inter = graph.interactions
    held_out = set(split.new_users(graph).tolist())
    assert held_out
    for user, items in enumerate(rows):
        period = split.fold_in if user in held_out else split.train
        mine = period[inter.user[period] == user]
        assert sorted(items) == sorted(inter.item[mine].tolist())  # all of them, nothing else
        ratings = dict(zip(inter.item[mine].tolist(), inter.rating[mine].tolist()))
        assert [ratings[i] for i in items] == sorted(ratings.values(), reverse=True)


def test_a_profile_naming_another_title_is_rejected():
    validator = SentenceValidator(["Heat (1995)", "Casino (1995)", "Up (2009)"], max_chars=600)
    assert validator.problem("Loves crime films like Heat (1995).", ["Heat (1995)"], None) is None
    problem = validator.problem("Loves Heat (1995) and Up (2009).", ["Heat (1995)"], None)
    assert problem.startswith("names an item not in the evidence")


def test_a_killed_run_resumes_from_the_cache(planted_dir, feature_cache, tiny_llm, tmp_path):
    cache = tmp_path / "cache"
    extra = ("--max-new-tokens", "160", "--batch-size", "1")
    argv = _argv(planted_dir, feature_cache, tiny_llm, tmp_path / "killed.jsonl", cache, *extra)
    process = subprocess.Popen(
        [sys.executable, "-m", "gnnrec", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # kill -9 once some answers are on disk
        lines = sum(len(p.read_text().splitlines()) for p in cache.glob("generations*.jsonl"))
        if lines >= 3 or process.poll() is not None:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed.jsonl").exists()  # nothing half-written
    done = sum(len(p.read_text().splitlines()) for p in cache.glob("generations*.jsonl"))
    resumed = tmp_path / "resumed.jsonl"
    argv = _argv(planted_dir, feature_cache, tiny_llm, resumed, cache, *extra)
    out = subprocess.run([sys.executable, "-m", "gnnrec", *argv], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    cached = int(out.stdout.split("(")[1].split(" answers")[0])
    assert cached >= done - 1  # at most the line being written was lost
    fresh = tmp_path / "fresh.jsonl"
    argv = _argv(planted_dir, feature_cache, tiny_llm, fresh, tmp_path / "other", *extra)
    assert main(argv) == 0
    assert resumed.read_bytes() == fresh.read_bytes()


@pytest.mark.slow
def test_ray_actors_write_the_same_profiles(planted_dir, feature_cache, tiny_llm, tmp_path):
    one = tmp_path / "one.jsonl"
    assert main(_argv(planted_dir, feature_cache, tiny_llm, one, tmp_path / "a")) == 0
    two = tmp_path / "two.jsonl"
    extra = ("--num-workers", "2", "--shard-size", "16")  # 3 shards over 2 actors
    argv = _argv(planted_dir, feature_cache, tiny_llm, two, tmp_path / "b", *extra)
    assert main(argv) == 0
    assert two.read_bytes() == one.read_bytes()
    assert len(list((tmp_path / "b").glob("generations-*.jsonl"))) >= 2  # the actors wrote


def test_a_bad_profiles_file_is_refused_naming_it(planted_dir, feature_cache, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"user": "u0", "profile": "likes space"}) + "\n")
    config = planted_config(
        planted_dir, feature_cache, tmp_path / "run",
        "data.user_text=profile", f'data.profiles_path="{path}"',
    )  # fmt: skip
    graph, split = load_updated(config.data)
    with pytest.raises(ValueError, match="no profile for 47 of the users"):
        node_texts(graph, split, config.data)
    path.write_text('{"user": "u0", "profile": "x"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2"):
        node_texts(graph, split, config.data)
    with pytest.raises(ValueError, match="profiles_path, which is empty"):
        load_config(None, ["data.user_text=profile"])


def test_the_profiles_bench_places_held_out_users_by_either_text(
    planted_dir, feature_cache, tiny_llm, tmp_path
):
    from gnnrec.bench import profiles
    from gnnrec.bench.quality import NEW_USERS

    argv = ["--seeds", "0", "1", "--generator-model", str(tiny_llm)]
    argv += ["--generator-cache", str(tmp_path / "cache"), "--output", str(tmp_path / "p.jsonl")]
    for o in [*planted_overrides(planted_dir, feature_cache), "train.epochs=2"]:
        argv.append(f"--set={o}")
    rows = profiles.main(argv)
    measured = {(r["split"], r["model"]): r for r in rows if "recall@20" in r}
    models = (profiles.TEMPLATE, profiles.PROFILES, "popularity")
    assert set(measured) == {(p, m) for p in NEW_USERS for m in models}
    for placement in NEW_USERS:  # the verdict is on the per-seed differences of the runs
        (verdict,) = [r for r in rows if r["split"] == placement and "verdict" in r]
        runs = {
            (r["model"], r["seed"]): r["recall@20"]
            for m in (profiles.TEMPLATE, profiles.PROFILES)
            for r in measured[(placement, m)]["runs"]
        }
        expected = [runs[(profiles.PROFILES, s)] - runs[(profiles.TEMPLATE, s)] for s in (0, 1)]
        assert verdict["difference"] == pytest.approx(expected)
        assert verdict["verdict"] in ("win", "tie", "loss")
    (generation,) = [r for r in rows if r["split"] == "generation"]
    for seed in generation["seeds"]:
        assert seed["users"] == 48
        assert seed["generated"] + sum(seed["rejected"].values()) == 48
    assert "profiles generated" in (tmp_path / "p.md").read_text()
    assert (tmp_path / "p.png").stat().st_size > 0
