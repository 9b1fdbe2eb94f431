"""The Python API checks what it is given: every public run-level function, under Hypothesis
over argument types and values, raises ``TypeError`` or ``ValueError`` naming the parameter
before any work (never ``AttributeError``, ``KeyError`` or a torch error), and a config changed
in place after loading is validated again by ``fit``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from helpers import planted_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gnnrec
from gnnrec.run import train_run

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, planted_dir, feature_cache) -> Path:
    run = tmp_path_factory.mktemp("api-arguments") / "run"
    train_run(planted_config(planted_dir, feature_cache, run, "train.epochs=1"))
    return run


@pytest.fixture(autouse=True)
def elsewhere(tmp_path, monkeypatch):
    """Drawn strings name paths: relative to a scratch folder, never the checkout."""
    monkeypatch.chdir(tmp_path)


def valid_k(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


CALLS = {
    # name: (call with the drawn value in that parameter, whether the value is a valid one)
    "recommend(k)": (lambda run, v: gnnrec.recommend(run, k=v, users=["u0"]), valid_k),
    "recommend(users)": (
        lambda run, v: gnnrec.recommend(run, k=1, users=v),
        lambda v: v is None or (isinstance(v, list) and not v),  # [] -> no users: valid
    ),
    "recommend(allow_data_change)": (
        lambda run, v: gnnrec.recommend(run, k=1, users=[], allow_data_change=v),
        lambda v: isinstance(v, bool),
    ),
    "recommend_for_text(k)": (lambda run, v: gnnrec.recommend_for_text(run, "x", k=v), valid_k),
    "recommend_for_text(text)": (
        lambda run, v: gnnrec.recommend_for_text(run, v, k=1),
        lambda v: isinstance(v, str) and v.strip(),
    ),
    "evaluate(allow_data_change)": (
        lambda run, v: gnnrec.evaluate(run, allow_data_change=v),
        lambda v: isinstance(v, bool),
    ),
    "evaluate(run_dir)": (lambda run, v: gnnrec.evaluate(v), lambda v: False),
    "export(output)": (
        lambda run, v: gnnrec.export(run, v),
        lambda v: v is None or isinstance(v, str) and v.strip(),
    ),
    "load_config(overrides)": (
        lambda run, v: gnnrec.load_config(overrides=v),
        lambda v: v is None or (isinstance(v, list) and not v),
    ),
    "load_config(recipe)": (lambda run, v: gnnrec.load_config(recipe=v), lambda v: False),
    "fit(config)": (lambda run, v: gnnrec.fit(v), lambda v: False),
}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(call=st.sampled_from(sorted(CALLS)), value=ANYTHING)
def test_every_argument_is_checked_before_any_work(run_dir, call, value):
    function, is_valid = CALLS[call]
    if is_valid(value):
        return  # a valid value does real work, tested elsewhere
    parameter = call.split("(")[1].rstrip(")")
    with pytest.raises((TypeError, ValueError)) as err:
        function(run_dir, value)
    message = str(err.value)
    named = parameter in message or (parameter == "run_dir" and "run directory" in message)
    assert named or "unknown recipe" in message or "unknown user" in message, message


def test_a_string_of_users_is_not_split_into_characters(run_dir):
    with pytest.raises(TypeError, match=r"users must be a list of ids, .*users=\['u0'\]"):
        gnnrec.recommend(run_dir, users="u0")


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "epochs", 0, "epochs"),
        ("eval", "top_k", 0, "top_k"),
        ("model", "id_dropout", -0.5, "id_dropout"),
        ("train", "l2", math.nan, "l2"),
        ("train", "lr", "0.1", "train.lr must be a number"),
        ("model", "hidden", 2.5, "model.hidden must be an integer"),
    ],
)
def test_a_config_changed_in_place_is_validated_again(
    planted_dir, feature_cache, tmp_path, section, key, value, message
):
    run = tmp_path / "run"
    config = planted_config(planted_dir, feature_cache, run)
    setattr(getattr(config, section), key, value)
    with pytest.raises(ValueError, match=message):
        gnnrec.fit(config)
    assert not run.exists()


def test_the_data_change_advice_names_the_python_parameter(run_dir, tmp_path, planted_dir):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    data = tmp_path / "interactions.csv"
    rows = (planted_dir / "interactions.csv").read_text().splitlines()
    data.write_text("\n".join(rows[:-3]) + "\n")
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(
        config.replace(str(planted_dir / "interactions.csv"), str(data))
    )
    with pytest.raises(ValueError, match=r"allow_data_change=True in Python"):
        gnnrec.evaluate(run)
    assert gnnrec.evaluate(run, allow_data_change=True)["recall@20"] >= 0
