"""Models register themselves: ``@register_model`` adds a name that ``model.name`` accepts, with
its label and its own checks of the shared options; every built-in model is registered by
importing the package, and a name is registered once."""

from __future__ import annotations

import pytest

from gnnrec.models.config import MODELS, ModelConfig, build_model, register_model
from gnnrec.models.gcn import GCNRecommender


@pytest.fixture
def toy_model():
    def one_layer_only(config: ModelConfig) -> None:
        if config.layers != 1:
            raise ValueError("toy takes exactly one layer")

    @register_model("toy", label="Toy", check=one_layer_only)
    class Toy(GCNRecommender):
        pass

    yield Toy
    del MODELS["toy"]


def test_a_registered_model_is_built_labelled_and_checks_its_options(toy_model):
    config = ModelConfig(name="toy", layers=1, hidden=8, text_features=False)
    assert config.label == "Toy on IDs"
    model = build_model(config, num_users=3, num_items=4, feature_dim=0, seed=0)
    assert type(model) is toy_model
    with pytest.raises(ValueError, match="toy takes exactly one layer"):
        ModelConfig(name="toy", layers=2)


def test_every_built_in_model_is_registered_once():
    assert {"gcn", "lightgcn", "mf", "gat", "ncf"} <= set(MODELS)
    with pytest.raises(ValueError, match="already registered"):
        register_model("gcn", label="again")(GCNRecommender)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        ModelConfig(name="nope")
