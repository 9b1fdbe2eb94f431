"""Golden losses: short seeded runs on the planted dataset must reproduce these per-epoch losses.
They were recorded before the layers were reorganised and reproduced bit for bit after it; a
change that alters them changes what a seeded run computes and must say so (and update them)."""

from __future__ import annotations

import json

import pytest
from test_training import planted_config

from gnnrec.run import train_run

GOLDEN = {
    "full": (
        [],
        [0.4209185366829236, 0.18809140644346675, 0.22830856086996695, 0.24823521450161934],
    ),
    "sampled": (
        ["train.mode=sampled", "train.fanouts=[5, 3]"],
        [0.42546087751785916, 0.2883101950089137, 0.20817200591166815, 0.2426002286374569],
    ),
    "mse": (
        ["train.objective=mse"],
        [0.7189828455448151, 0.6235895256201426, 0.5737291922171911, 0.5301982214053472],
    ),
    "lightgcn": (
        ["model.name=lightgcn", "model.text_features=false", "model.id_dropout=0.0"],
        [0.6735604306062063, 0.5770230988661448, 0.41350720326105755, 0.29439661900202435],
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
