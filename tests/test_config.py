from __future__ import annotations

import pytest

from gnnrec.config import RunConfig, load_config, save_config
from gnnrec.recipes import ml_latest_small_cpu


def test_toml_roundtrip_with_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('run_dir = "r"\n[train]\nepochs = 7\nfanouts = [5, 5]\n[model]\nhidden = 16\n')
    config = load_config(
        path, ["train.lr=0.01", "model.aggregation=mean"], base=ml_latest_small_cpu()
    )
    assert (config.run_dir, config.train.epochs, config.train.fanouts) == ("r", 7, [5, 5])
    assert (config.train.lr, config.model.hidden, config.model.aggregation) == (0.01, 16, "mean")
    assert config.train.batch_size == ml_latest_small_cpu().train.batch_size  # from the recipe
    save_config(config, tmp_path / "back.toml")
    assert load_config(tmp_path / "back.toml") == config


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", r"config.train: unknown key\(s\) \['epoch'\]"),
        ("model.aggregation=median", "aggregation must be one of"),
        ("train", "must look like section.key=value"),
    ],
)
def test_bad_configuration_is_explained(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_defaults_are_valid():
    assert RunConfig().model.name == "gcn"


def test_a_dataset_without_its_path_is_explained():
    from gnnrec.pipeline import load_dataset

    with pytest.raises(ValueError, match="needs data.path"):
        load_dataset(load_config(None, ["data.dataset=ml-100k"]).data)
