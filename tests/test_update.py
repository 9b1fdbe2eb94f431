"""``gnnrec update``: new interactions, users and items grow the run's tables and graph, train on
from the current weights (dense or sharded ID tables), and become a new version of the run that
every loader reads; the old rows move to their new node positions, the new ones learn their
place, updates chain and are reproducible, and bad input changes nothing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import SHARDED, error_line, planted_config, trained_model, write_csv

import gnnrec
from gnnrec import update as update_module
from gnnrec.cli import main
from gnnrec.common.run_lock import run_dir_lock
from gnnrec.config import load_config
from gnnrec.models.config import ModelConfig, build_model
from gnnrec.run import train_run
from gnnrec.update import UpdateConfig, grown_tables, update_run
from gnnrec.versions import VERSIONS, current_version

ID_MODEL = ("model.name=lightgcn", "model.text_features=false", "model.layers=2")
SPACE = [f"i0_{k}" for k in range(15)]
HORSES = [f"i2_{k}" for k in range(15)]


def _new_interactions(folder: Path) -> Path:
    """A new user of space stories, a new item, and a known user's new interaction."""
    rows = [["newbie", item, 5] for item in SPACE[:6]]
    rows += [["u2", "i_brand_new", 4], ["u2", HORSES[0], 4], ["u2", HORSES[1], 4]]
    return write_csv(folder / "new.csv", ["user_id", "item_id", "rating"], rows)


def _brand_new_text(folder: Path) -> Path:
    """The text of the new item of :func:`_new_interactions`."""
    return write_csv(
        folder / "items.csv",
        ["item_id", "title", "genre"],
        [["i_brand_new", "A horses story number 99", "horses"]],
    )


def _train(planted_dir, feature_cache, run_dir: Path, *extra: str) -> Path:
    train_run(planted_config(planted_dir, feature_cache, run_dir, *extra))
    return run_dir


@pytest.fixture(scope="module")
def lightgcn(planted_dir, feature_cache, tmp_path_factory) -> Path:
    return _train(planted_dir, feature_cache, tmp_path_factory.mktemp("upd") / "run", *ID_MODEL)


@pytest.fixture
def run(lightgcn, tmp_path) -> Path:
    """A fresh copy of the trained LightGCN run (each test updates its own)."""
    copy = tmp_path / "run"
    shutil.copytree(lightgcn, copy)
    return copy


def test_grown_tables_keep_every_old_row_at_its_new_node_position():
    old = build_model(ModelConfig(name="lightgcn", text_features=False), 3, 4, 0, seed=0)
    new = build_model(ModelConfig(name="lightgcn", text_features=False), 5, 6, 0, seed=1)
    state = old.state_dict()
    grown = grown_tables(state, new, (3, 4), seed=7)
    rows = grown["embedding.weight"]
    assert rows.shape == (11, state["embedding.weight"].shape[1])
    torch.testing.assert_close(rows[:3], state["embedding.weight"][:3])  # the old users
    torch.testing.assert_close(rows[5:9], state["embedding.weight"][3:])  # the old items
    fresh = torch.cat([rows[3:5], rows[9:]])  # 2 new users, 2 new items: drawn, not zero
    assert fresh.abs().min() > 0 and fresh.std() < 3 * new.table_std(new.embedding)
    torch.testing.assert_close(grown_tables(state, new, (3, 4), seed=7)["embedding.weight"], rows)
    with pytest.raises(ValueError, match="rows, expected"):
        grown_tables(state, new, (4, 4), seed=7)


def test_an_update_adds_users_items_and_interactions_as_a_new_version(run, tmp_path):
    before = gnnrec.load(run)
    trained = {name: (run / name).read_bytes() for name in ("model.pt", "data.json")}
    metrics = update_run(run, _new_interactions(tmp_path), UpdateConfig(epochs=4))
    update = metrics["update"]
    with open(load_config(run / "config.toml").data.path) as f:
        held = {(row[0], row[1]) for row in csv.reader(f)}
    with open(tmp_path / "new.csv") as f:
        fresh = {(row[0], row[1]) for row in list(csv.reader(f))[1:]} - held
    assert (update["added"], update["new_users"], update["new_items"]) == (len(fresh), 1, 1)
    assert (update["version"], update["from_version"]) == ("0001", "trained")
    assert current_version(run) == "0001"
    version = run / VERSIONS / "0001"
    for name in ("model.pt", "config.toml", "data.json", "metrics.json", "recommendations.csv"):
        assert (version / name).is_file(), name
    data = json.loads((version / "data.json").read_text())
    assert (data["users"], data["items"]) == (before.num_users + 1, before.num_items + 1)
    handle = gnnrec.load(run)
    assert handle.version_name == "0001" and handle.version != before.version
    assert handle.knows_user("newbie") and "i_brand_new" in handle.item_ids
    # the new user is trained in (not folded in): their items are never recommended back, and
    # what they are recommended is their genre
    top = [item for item, _ in handle.recommend(["newbie"], k=5)["newbie"]]
    assert not set(top) & set(SPACE[:6])
    assert sum(item in SPACE for item in top) >= 4, top
    assert {HORSES[0], HORSES[1], "i_brand_new"} <= set(handle.seen_items("u2"))
    # the trained run's own files are untouched
    assert trained == {name: (run / name).read_bytes() for name in trained}


def test_updates_chain_and_are_reproducible(run, tmp_path):
    update_run(run, _new_interactions(tmp_path), UpdateConfig(epochs=2))
    second = write_csv(tmp_path / "more.csv", ["user_id", "item_id"], [["newbie", SPACE[7]]])
    metrics = update_run(run, second, UpdateConfig(epochs=2))
    assert (metrics["update"]["version"], metrics["update"]["from_version"]) == ("0002", "0001")
    config = load_config(run / VERSIONS / "0002" / "config.toml")
    assert [Path(p).parent.name for p in config.data.updates] == ["0001", "0002"]
    first_model = trained_model(run / VERSIONS / "0002")
    shutil.rmtree(run / VERSIONS / "0002")
    (run / VERSIONS / "CURRENT").write_text("0001\n")
    update_run(run, second, UpdateConfig(epochs=2))
    again = trained_model(run / VERSIONS / "0002")
    assert first_model.keys() == again.keys()
    for key in first_model:
        assert torch.equal(first_model[key], again[key]), key
    assert SPACE[7] in gnnrec.load(run).seen_items("newbie")


def test_sharded_id_tables_update_like_dense_ones(planted_dir, feature_cache, tmp_path):
    run = _train(planted_dir, feature_cache, tmp_path / "sharded", *ID_MODEL, *SHARDED)
    update_run(run, _new_interactions(tmp_path), UpdateConfig(epochs=4))
    handle = gnnrec.load(run)
    top = [item for item, _ in handle.recommend(["newbie"], k=5)["newbie"]]
    assert sum(item in SPACE for item in top) >= 4, top
    old = trained_model(run)["embedding.weight"]
    new = trained_model(run / VERSIONS / "0001")["embedding.weight"]
    assert new.shape[0] == old.shape[0] + 2  # one new user (row 48), one new item (the last)
    moved = (new[:48] != old[:48]).any(dim=1).nonzero().flatten().tolist()
    assert moved == [2]  # of the old users, only u2 (who has new interactions) moved
    assert torch.equal(new[49 + 20 : 49 + 30], old[48 + 20 : 48 + 30])  # items they never named


def test_a_text_model_takes_new_items_text_and_refuses_new_items_without(
    planted_dir, feature_cache, tmp_path
):
    run = _train(planted_dir, feature_cache, tmp_path / "text", "train.epochs=2")
    new = _new_interactions(tmp_path)
    with pytest.raises(ValueError, match=r"new item\(s\) without text \('i_brand_new'\)"):
        update_run(run, new)
    assert current_version(run) is None and not any((run / VERSIONS).iterdir())
    update_run(run, new, UpdateConfig(epochs=1), items=_brand_new_text(tmp_path))
    handle = gnnrec.load(run)
    assert handle.title("i_brand_new") == "A horses story number 99"
    bad = write_csv(tmp_path / "bad-items.csv", ["item_id", "colour"], [["i_other", "red"]])
    other = write_csv(tmp_path / "other.csv", ["user_id", "item_id"], [["u1", "i_other"]])
    with pytest.raises(ValueError, match=r"columns \['colour'\] that are no item text field"):
        update_run(run, other, items=bad)
    assert current_version(run) == "0001"


def test_bad_updates_change_nothing(run, tmp_path):
    model = (run / "model.pt").read_bytes()
    wrong = write_csv(tmp_path / "wrong.csv", ["user", "item"], [["u1", "i0_1"]])
    with pytest.raises(ValueError, match=r"missing \['user_id', 'item_id'\]"):
        update_run(run, wrong)
    empty = write_csv(tmp_path / "empty.csv", ["user_id", "item_id"], [])
    with pytest.raises(ValueError, match="empty.csv"):
        update_run(run, empty)
    with pytest.raises(ValueError, match="is a gnnrec run directory, not a table"):
        update_run(run, run)  # its recommendations.csv has user_id and item_id columns too
    with pytest.raises(ValueError, match="not found"):
        update_run(run, tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        UpdateConfig(epochs=0)
    with run_dir_lock(run), pytest.raises(ValueError, match="in use by another gnnrec process"):
        update_run(run, _new_interactions(tmp_path))
    assert not (run / VERSIONS).exists() or not any((run / VERSIONS).iterdir())
    assert (run / "model.pt").read_bytes() == model


def test_an_update_of_pairs_the_run_holds_is_refused(run, tmp_path):
    with open(load_config(run / "config.toml").data.path) as f:
        rows = list(csv.reader(f))[1:4]  # pairs the run holds (in training or held out)
    again = write_csv(tmp_path / "again.csv", ["user_id", "item_id"], [r[:2] for r in rows])
    with pytest.raises(
        ValueError, match="adds no interaction the run does not already hold"
    ) as err:
        update_run(run, again)
    assert str(err.value).startswith(f"{again}: ")  # the table given, not the version's copy
    assert current_version(run) is None and not any((run / VERSIONS).iterdir())


def test_a_failed_update_leaves_the_current_version_as_it_was(run, tmp_path):
    update_run(run, _new_interactions(tmp_path), UpdateConfig(epochs=1))

    def fail(step: int) -> None:
        raise KeyboardInterrupt  # as a Ctrl-C in the middle of training

    more = write_csv(tmp_path / "more.csv", ["user_id", "item_id"], [["newbie", SPACE[9]]])
    with pytest.raises(KeyboardInterrupt):
        update_run(run, more, on_step=fail)
    assert current_version(run) == "0001" and not (run / VERSIONS / "0002").exists()
    assert gnnrec.load(run).version_name == "0001"
    update_run(run, more, UpdateConfig(epochs=1))  # the next update goes through
    assert current_version(run) == "0002"


def test_an_updated_run_is_what_loaders_read_and_is_not_retrained(run, tmp_path, capsys):
    code = main(["update", "--run-dir", str(run), "--data", str(_new_interactions(tmp_path))])
    out = capsys.readouterr().out
    assert code == 0 and "version 0001 of" in out and "interactions, 1 new users" in out
    assert "; rows, 10 epoch(s)," in out  # the default for a model of ID embeddings alone
    assert "Recall@20" in out
    trained_table = (run / "recommendations.csv").read_bytes()
    assert main(["recommend", "--run-dir", str(run), "--users", "newbie", "-k", "3"]) == 0
    assert "newbie" in (run / VERSIONS / "0001" / "recommendations.csv").read_text()
    assert (run / "recommendations.csv").read_bytes() == trained_table  # the trained run's own
    export = tmp_path / "export"
    assert main(["export", "--run-dir", str(run), "--output", str(export)]) == 0
    ids = __import__("pandas").read_parquet(export / "user_ids.parquet")["id"].tolist()
    assert "newbie" in ids
    config = load_config(run / "config.toml", [f'run_dir="{run}"'])
    with pytest.raises(ValueError, match="has been updated"):
        train_run(config)
    code = main(["update", "--run-dir", str(run), "--data", str(tmp_path / "nope.csv")])
    assert "nope.csv" in error_line(capsys, code)
    code = main(["update", "--run-dir", str(tmp_path / "no-run"), "--data", str(export)])
    assert "no such run directory" in error_line(capsys, code)
    both = ["--strategy", "continue", "--replay", "1"]
    code = main(["update", "--run-dir", str(run), "--data", str(export), *both])
    assert "replay is for the 'rows' strategy" in error_line(capsys, code)


def test_the_rows_strategy_trains_only_the_rows_it_reaches_and_continue_every_weight(
    planted_dir, feature_cache, tmp_path
):
    run = _train(planted_dir, feature_cache, tmp_path / "text", "train.epochs=2")
    before = trained_model(run)
    few = write_csv(
        tmp_path / "few.csv", ["user_id", "item_id"], [["u1", SPACE[3]], ["u1", SPACE[4]]]
    )
    update_run(run, few, UpdateConfig(strategy="rows", epochs=3))
    after = trained_model(run / VERSIONS / "0001")
    shared = [k for k in before if not k.startswith(("embedding.", "bias."))]
    assert shared and all(torch.equal(before[k], after[k]) for k in shared)
    rows_before, rows_after = before["embedding.weight"], after["embedding.weight"]
    assert rows_before.shape == rows_after.shape  # no new user or item
    changed = (rows_before != rows_after).any(dim=1).nonzero().flatten().tolist()
    assert 1 in changed and set(changed) <= {1, 48 + 3, 48 + 4}  # u1, its items: no other row
    # the default for a text model continues training: every weight, every row reached
    metrics = update_run(run, _new_interactions(tmp_path), items=_brand_new_text(tmp_path))
    assert metrics["epochs_run"] == 1
    continued = trained_model(run / VERSIONS / "0002")
    projection = [k for k in shared if k.startswith("project.")]  # the text projection
    assert projection and all(not torch.equal(after[k], continued[k]) for k in projection)
    moved = (continued["embedding.weight"][:48] != rows_after[:48]).any(dim=1)
    assert moved.sum() > 40  # nearly every old user, not only u2 who acted
    # and the new user is placed among the items of their interactions
    top = [item for item, _ in gnnrec.load(run).recommend(["newbie"], k=5)["newbie"]]
    assert not set(top) & set(SPACE[:6]) and sum(item in SPACE for item in top) >= 4, top


def test_the_strategy_and_its_epochs_default_per_model():
    """``auto``: continue one epoch for a model that reads text, rows for ten epochs for one of
    ID embeddings alone (or when a replay is asked for, which only rows reads)."""
    auto = UpdateConfig()
    assert auto.chosen(text_features=True) == "continue"
    assert auto.epoch_count(text_features=True) == 1
    assert auto.chosen(text_features=False) == "rows"
    assert auto.epoch_count(text_features=False) == 10
    assert UpdateConfig(replay=1.0).chosen(text_features=True) == "rows"
    assert UpdateConfig(strategy="rows").chosen(text_features=True) == "rows"
    assert UpdateConfig(strategy="continue", epochs=3).epoch_count(text_features=False) == 3
    assert UpdateConfig(strategy="continue").step_scale(text_features=False) == 1.0


def test_update_settings_are_checked():
    for bad in (
        {"replay": -1.0},
        {"replay": float("nan")},
        {"lr_scale": 0.0},
        {"epochs": 0},
        {"epochs": 1.5},  # a field typed `int | None` is checked as an int when it holds one
        {"epochs": True},
        {"lr_scale": float("inf")},
        {"strategy": "everything"},
        {"strategy": "continue", "replay": 1.0},
    ):
        with pytest.raises(ValueError, match="replay|lr_scale|epochs|strategy"):
            UpdateConfig(**bad)


def test_the_step_size_defaults_per_model_and_a_given_one_wins(run, tmp_path, monkeypatch):
    """Rows: 4x the run's lr for ID-only models, 1x with text features (bench/README.md);
    the trainer is handed that step size."""
    assert UpdateConfig().step_scale(text_features=False) == 4.0
    assert UpdateConfig().step_scale(text_features=True) == 1.0
    assert UpdateConfig(lr_scale=2.5).step_scale(text_features=True) == 2.5
    config = load_config(run / "config.toml")
    steps = []
    real_fit = update_module.fit

    def spy(new_config, *args, **kwargs):
        steps.append(new_config.train.lr)
        return real_fit(new_config, *args, **kwargs)

    monkeypatch.setattr(update_module, "fit", spy)
    update_run(run, write_csv(tmp_path / "d.csv", ["user_id", "item_id"], [["u2", SPACE[6]]]))
    expected = 1.0 if config.model.text_features else 4.0
    assert steps == [pytest.approx(expected * config.train.lr)]


def test_a_model_without_id_rows_keeps_its_weights_and_grows_its_graph(
    planted_dir, feature_cache, tmp_path
):
    run = _train(planted_dir, feature_cache, tmp_path / "text-only", "model.id_embeddings=false")
    rows = UpdateConfig(strategy="rows")
    metrics = update_run(run, _new_interactions(tmp_path), rows, items=_brand_new_text(tmp_path))
    assert metrics["epochs_run"] == 0 and metrics["update"]["new_users"] == 1
    before, after = trained_model(run), trained_model(run / VERSIONS / "0001")
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("bias."))
    handle = gnnrec.load(run)
    top = [item for item, _ in handle.recommend(["newbie"], k=5)["newbie"]]
    assert sum(item in SPACE for item in top) >= 4, top


@pytest.mark.slow  # a Ray Train run of 2 workers, then its update on 2 workers
def test_an_update_trains_on_ray_workers_with_sharded_tables(planted_dir, feature_cache, tmp_path):
    extra = (*ID_MODEL, *SHARDED, "parallel.num_workers=2", "parallel.cpus_per_worker=0.5")
    run = _train(planted_dir, feature_cache, tmp_path / "ray", *extra)
    metrics = update_run(run, _new_interactions(tmp_path), UpdateConfig(epochs=4))
    assert metrics["trained_on"].startswith("2 Ray workers")
    handle = gnnrec.load(run)
    top = [item for item, _ in handle.recommend(["newbie"], k=5)["newbie"]]
    assert sum(item in SPACE for item in top) >= 4, top


def test_a_run_being_updated_can_still_be_served_but_not_trained_or_updated(run, tmp_path):
    from gnnrec.serve.launch import check_servable
    from gnnrec.update import UPDATING

    with run_dir_lock(run, create=False, purpose=UPDATING):
        check_servable(run)  # the current version stays servable while the next is written
        with pytest.raises(ValueError, match="in use by another gnnrec process"):
            update_run(run, _new_interactions(tmp_path))
        with pytest.raises(ValueError, match="in use by another gnnrec process"):
            train_run(load_config(run / "config.toml", [f'run_dir="{run}"']))
    with run_dir_lock(run, create=False), pytest.raises(ValueError, match="in use"):
        check_servable(run)  # a train holds it: its model.pt may be replaced any moment


def test_an_update_of_a_run_whose_data_changed_is_refused(planted_dir, feature_cache, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(planted_dir, data)
    run = _train(data, feature_cache, tmp_path / "run", *ID_MODEL, "train.epochs=1")
    new = _new_interactions(tmp_path)
    lines = (data / "interactions.csv").read_text().splitlines()
    user, item, rating, ts = lines[1].split(",")
    lines[1] = ",".join([user, item, "1" if rating != "1" else "2", ts])
    (data / "interactions.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="changed since"):
        update_run(run, new, UpdateConfig(epochs=1))
    assert current_version(run) is None
