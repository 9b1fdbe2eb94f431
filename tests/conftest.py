"""Shared fixtures and the Hypothesis profiles (``GNNREC_HYPOTHESIS_PROFILE``: ``ci`` by
default, derandomised and without deadlines; ``thorough`` for long local runs)."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

# Triton kernels run on the CPU through the interpreter, which must be chosen before Triton is
# imported (the gnnrec package imports it on first use of gnnrec.kernels).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("GNNREC_HYPOTHESIS_PROFILE", "ci"))

GENRES = ["space", "cooking", "horses", "pirates"]


def write_planted_dataset(
    folder: Path, num_users: int = 48, items_per_genre: int = 15, per_user: int = 10, seed: int = 0
) -> Path:
    """CSV tables with planted structure: each user interacts mostly with one genre's items;
    item text names the genre. A model that uses the graph or the text can beat popularity."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    items = [(f"i{g}_{k}", genre) for g, genre in enumerate(GENRES) for k in range(items_per_genre)]
    with open(folder / "items.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "title", "genre"])
        for item, genre in items:
            w.writerow([item, f"A {genre} story number {item.split('_')[1]}", genre])
    with open(folder / "interactions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item_id", "rating", "ts"])
        for u in range(num_users):
            genre = GENRES[u % len(GENRES)]
            own = [i for i, g in items if g == genre]
            chosen = rng.sample(own, per_user - 1) + [rng.choice(items)[0]]
            for t, item in enumerate(dict.fromkeys(chosen)):
                w.writerow([f"u{u}", item, rng.choice([3, 4, 5]), 1000 + t])
    return folder


@pytest.fixture(scope="session")
def planted_dir(tmp_path_factory) -> Path:
    return write_planted_dataset(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    """One feature cache for the whole session, so each text is encoded once."""
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="session")
def model_runs(planted_dir, feature_cache, tmp_path_factory) -> dict[str, Path]:
    """Trained planted runs, read-only for the tests that share them: the text + ID GCN,
    LightGCN (IDs only), GAT and MF."""
    from helpers import planted_config

    from gnnrec.run import train_run

    folder = tmp_path_factory.mktemp("model-runs")
    extra = {
        "gcn": [],
        "lightgcn": ["model.name=lightgcn", "model.text_features=false", "model.layers=3"],
        "gat": ["model.name=gat", "model.text_features=false"],
        "mf": ["model.name=mf", "model.text_features=false", "model.layers=0"],
    }
    for name, overrides in extra.items():
        train_run(planted_config(planted_dir, feature_cache, folder / name, *overrides))
    return {name: folder / name for name in extra}
