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
        ("train.epoch=3", r"train: unknown key\(s\) 'epoch'; did you mean 'epochs'\?"),
        ("trian.epochs=3", r"config: unknown key\(s\) 'trian'; did you mean 'train'\?"),
        (
            'train.mode="sample"',
            r"train.mode must be one of \('full', 'sampled'\), got 'sample' "
            r"\(a string\); did you mean 'sampled'\?",
        ),
        ("encoder.pooling=avg", r"encoder.pooling must be one of \('mean', 'cls', 'last'\)"),
        ("model.aggregation=median", "aggregation must be one of"),
        ("train", "must look like section.key=value"),
        ("train.device=gpu", "train.device must be auto, cpu, cuda or cuda:N"),
        ("encoder.device=tpu", "encoder.device must be auto, cpu, cuda or cuda:N"),
        # types are checked before anything runs, naming the key
        ("train.batch_size=true", r"train.batch_size must be an integer, got true \(a boolean\)"),
        ("train.epochs=1.5", r"train.epochs must be an integer, got 1.5"),
        ("train.fanouts=abc", r"train.fanouts must be a list, got 'abc'"),
        ('model.hidden="64"', r"model.hidden must be an integer, got '64' \(a string\)"),
        ("train.fanouts=[10, true]", r"train.fanouts\[1\] must be an integer"),
        ("data.options.rating_column=3", "takes no options"),
        ("train.fanouts=[-1, 0, 5]", r"each >= 1 or -1 \(all\), got \[-1, 0, 5\]"),
        ("train.valid_chunk_nodes=-1", r"valid_chunk_nodes must be >= 0"),
    ],
)
def test_bad_configuration_is_explained(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [override])


def test_sampled_training_needs_one_fanout_per_layer():
    with pytest.raises(ValueError, match="train.fanouts has 2 hops but model.layers is 3"):
        load_config(None, ["train.mode=sampled", "train.fanouts=[5, 5]"])
    assert load_config(None, ["train.fanouts=[5, 5]"]).train.mode == "full"  # unused there


def test_defaults_are_valid():
    assert RunConfig().model.name == "gcn"


def test_a_dataset_without_its_path_is_explained():
    from gnnrec.data import load_dataset

    with pytest.raises(ValueError, match="needs data.path"):
        load_dataset(load_config(None, ["data.dataset=ml-100k"]).data)


def test_the_training_device_is_the_gpu_when_there_is_one():
    import torch

    auto = load_config(None, []).train
    assert auto.device == "auto"
    assert auto.torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert load_config(None, ["train.device=cpu"]).train.torch_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no GPU"):
            load_config(None, ["train.device=cuda:0"]).train.torch_device()


def test_choices_are_listed_and_checked_however_a_config_is_built():
    from gnnrec.common.typed_fields import choices_of
    from gnnrec.train.config import TrainConfig

    assert choices_of(TrainConfig)["mode"] == ("full", "sampled")
    assert choices_of(TrainConfig)["id_optimizer"] == ("adam", "rowwise_adagrad")
    with pytest.raises(ValueError, match=r"mode must be one of .* did you mean 'sampled'"):
        TrainConfig(mode="sample")  # in Python, not only from TOML


def test_config_show_doc_is_the_same_configuration_documented(capsys):
    import tomllib

    from gnnrec.cli import main

    assert main(["config", "show", "--set", "train.epochs=3"]) == 0
    plain = tomllib.loads(capsys.readouterr().out)
    assert main(["config", "show", "--doc", "--set", "train.epochs=3"]) == 0
    text = capsys.readouterr().out
    assert tomllib.loads(text) == plain
    assert "# one of: full, sampled\nmode = " in text
    assert "# may change when the run resumes\nepochs = 3" in text
