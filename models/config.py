"""The model's configuration and the registry of models: ``@register_model`` on a class (or a
constructor) adds a model that ``model.name`` can choose, with its label and its own checks of
the shared options. Adding a model is one file that registers itself plus one import line in
``models/__init__.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch

from gnnrec.common.typed_fields import check_fields
from gnnrec.data.hetero import NUM_RELATIONS

if TYPE_CHECKING:
    from gnnrec.models.recommender import Recommender


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: ``build(config, num_users, num_items, feature_dim, draw_id_table,
    num_entities=K, num_relations=R)``, its ``label`` (``"GCN"``) and ``check(config)``, which
    raises ``ValueError`` for options the model does not take."""

    build: Callable[..., Recommender]
    label: str
    check: Callable[[ModelConfig], None]


MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, label: str, check: Callable[[ModelConfig], None] | None = None
) -> Callable:
    """Registers the decorated class or constructor as ``model.name = name``."""

    def register(build: Callable) -> Callable:
        if name in MODELS:
            raise ValueError(f"a model named {name!r} is already registered")
        MODELS[name] = ModelEntry(build, label, check or (lambda config: None))
        return build

    return register


@dataclass(kw_only=True)
class ModelConfig:
    """The model's shape. ``text_features``/``id_embeddings``: which layer-0 inputs it uses.

    ``name``: ``gcn`` (any combination below), ``lightgcn`` (He et al., 2020: ID embeddings
    only, parameter-free sum propagation with ``D^-1/2 A D^-1/2``, layer mean), ``mf``
    (matrix factorisation: ID embeddings, no layers), ``gat`` (graph attention layers,
    ``heads`` of them concatenated, in place of the convolutions) or ``ncf`` (NeuMF over the
    layer-0 embeddings, :mod:`gnnrec.models.ncf`: no graph; ``layers``, ``aggregation`` and
    ``conv_weights`` unused). ``lightgcn`` and ``mf`` are checked to be exactly that.

    ``relations``: ``merged`` (one graph: every edge alike) or ``typed`` (GCN and LightGCN:
    each relation of the graph, users rating items, items rated by users, user–user and
    item–item edges, with its own normalisation and, with ``conv_weights``, its own weight;
    ``relation_bases > 0``: those weights combined from that many shared bases, R-GCN's
    decomposition; ``relation_kernel``: one aggregation call per relation or one segmented
    call; :mod:`gnnrec.models.relational_layer`).
    """

    RESUMABLE: ClassVar[frozenset[str]] = frozenset()

    name: str = "gcn"
    hidden: int = 64
    layers: int = 3
    aggregation: Literal["sum", "mean", "max"] = "sum"
    layer_combination: Literal["mean", "last"] = "mean"
    conv_weights: bool = False
    text_features: bool = True
    id_embeddings: bool = True
    id_dropout: float = 0.3
    # share of training items scored as an edge-less (cold) item is: the model over no edges
    # and no ID row, by its text alone (train/objective.py; no effect without text_features)
    cold_dropout: float = 0.0
    heads: int = 2
    relations: Literal["merged", "typed"] = "merged"
    relation_bases: int = 0
    relation_kernel: Literal["per_relation", "segmented"] = "per_relation"

    @property
    def label(self) -> str:
        """What the model is, in words: ``"GCN on text features + ID embeddings"``."""
        name = MODELS[self.name].label
        inputs = [w for on, w in ((self.text_features, "text"), (self.id_embeddings, "IDs")) if on]
        return f"{name} on {' + '.join(inputs)}"

    def __post_init__(self) -> None:
        check_fields(self)
        if self.name not in MODELS:
            raise ValueError(f"unknown model {self.name!r}; available: {sorted(MODELS)}")
        if self.heads < 1:
            raise ValueError(f"heads must be >= 1, got {self.heads}")
        if not (self.text_features or self.id_embeddings):
            raise ValueError("the model needs text_features, id_embeddings or both")
        if self.hidden < 1 or self.layers < 0 or not 0.0 <= self.id_dropout < 1.0:
            raise ValueError("hidden >= 1, layers >= 0 and id_dropout in [0, 1) are required")
        if self.relations == "typed" and (
            self.name not in ("gcn", "lightgcn") or self.aggregation == "max"
        ):
            raise ValueError(
                "relations = 'typed' is built for gcn and lightgcn with sum or mean "
                f"aggregation, not {self.name} with {self.aggregation}"
            )
        if not 0.0 <= self.cold_dropout < 1.0:
            raise ValueError(f"cold_dropout must be in [0, 1), got {self.cold_dropout}")
        if self.relation_bases < 0 or (
            self.relation_bases and (self.relations != "typed" or not self.conv_weights)
        ):
            raise ValueError(
                "relation_bases (>= 0) decomposes the typed relations' weights: it needs "
                "relations = 'typed' and conv_weights = true"
            )
        MODELS[self.name].check(self)

    @property
    def pure_ids(self) -> bool:
        """ID embeddings only, no text and no layer weights."""
        return self.id_embeddings and not self.text_features and not self.conv_weights


def build_model(
    config: ModelConfig,
    num_users: int,
    num_items: int,
    feature_dim: int,
    seed: int,
    draw_id_table: bool = True,
    num_entities: int = 0,
    num_relations: int = NUM_RELATIONS,
) -> Recommender:
    """The model ``config.name`` names, its parameters drawn from ``torch.manual_seed(seed)``
    (the ID table left undrawn with ``draw_id_table=False``: sharded tables draw their own),
    over users, items and ``num_entities`` entity nodes, with ``num_relations`` relations
    (typed models)."""
    torch.manual_seed(seed)
    return MODELS[config.name].build(
        config,
        num_users,
        num_items,
        feature_dim,
        draw_id_table,
        num_entities=num_entities,
        num_relations=num_relations,
    )
