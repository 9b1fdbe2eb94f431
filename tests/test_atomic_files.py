"""One atomic writer for every file gnnrec writes: whole or not at all, with the permissions
any file of the user gets (not mkstemp's 0600), and never bare NaN in JSON."""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gnnrec.common.atomic_files import atomic_path, write_json_atomic, write_text_atomic
from gnnrec.train.checkpoint import load_checkpoint, save_checkpoint


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        save_checkpoint({"w": torch.zeros(2)}, tmp_path / "model.pt")
    finally:
        os.umask(old)
    for name in ("a.txt", "model.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"recall@20": 0.5})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "recall@20": 0.5\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "m.json", {"loss": math.nan})
    assert not list(tmp_path.iterdir())


@settings(max_examples=60)
@given(st.data())
def test_a_flipped_bit_in_a_checkpoint_is_an_error_or_harmless(tmp_path_factory, data):
    """torch loads a flipped bit in tensor data without complaint; the checksum saved inside
    makes every such file an error naming it, never a silently different model."""
    folder = tmp_path_factory.mktemp("flip")
    state = {"model": {"w": torch.arange(500.0), "b": torch.ones(3, dtype=torch.bfloat16)}}
    state |= {"epoch": 4, "history": [{"loss": 0.25}]}
    path = save_checkpoint(state, folder / "last.pt")
    raw = bytearray(path.read_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= 1 << data.draw(st.integers(0, 7))
    path.write_bytes(bytes(raw))
    try:
        loaded = load_checkpoint(path)
    except ValueError as err:
        assert str(err).startswith(str(path))
        return
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])  # the flip hit nothing read
    assert torch.equal(loaded["model"]["b"], state["model"]["b"])
    assert (loaded["epoch"], loaded["history"]) == (4, [{"loss": 0.25}])
