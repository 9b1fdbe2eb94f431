"""Golden losses: short seeded runs on the planted dataset must reproduce these per-epoch losses.
They were reproduced bit for bit across the layer reorganisation and recorded anew when the
seeded random split was vectorised (one sort instead of a loop over users: other draws); a
change that alters them changes what a seeded run computes and must say so (and update them)."""

from __future__ import annotations

import json

import pytest
from test_training import planted_config

from gnnrec.run import train_run

GOLDEN = {
    "full": (
        [],
        [0.5236313392718633, 0.17153833558162054, 0.15661594892056505, 0.1606378819948683],
    ),
    "sampled": (
        ["train.mode=sampled", "train.fanouts=[5, 3]"],
        [0.5056245649854342, 0.24898373087247214, 0.286608063771079, 0.21056241914629936],
    ),
    "mse": (
        ["train.objective=mse"],
        [0.779048333565394, 0.6195315221945444, 0.5640760312477747, 0.5152205228805542],
    ),
    "lightgcn": (
        ["model.name=lightgcn", "model.text_features=false", "model.id_dropout=0.0"],
        [0.6757616897424062, 0.5822790960470835, 0.41435305774211884, 0.2830582583944003],
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_seeded_losses_are_pinned(planted_dir, feature_cache, tmp_path, name):
    extra, losses = GOLDEN[name]
    run_dir = tmp_path / name
    config = planted_config(planted_dir, feature_cache, run_dir, "train.epochs=4", *extra)
    train_run(config)
    got = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").open()]
    assert got == pytest.approx(losses, rel=1e-6, abs=0)
