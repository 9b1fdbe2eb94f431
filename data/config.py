"""The ``[data]`` section: which dataset, how it is split, how user text is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from gnnrec.common.typed_fields import check_fields
from gnnrec.data.datasets import build_options, dataset_spec
from gnnrec.data.edge_weights import EdgeWeight
from gnnrec.data.templates import template_fields


@dataclass(kw_only=True)
class DataConfig:
    """Which dataset (a name in :data:`gnnrec.data.datasets.DATASETS`), where it is, how it is
    split and how user text is built (from training interactions only). ``options``: the
    dataset's own settings (``[data.options]``, e.g. a table's columns), checked against the
    dataset's options dataclass."""

    # Nothing of the data may change when a run resumes.
    RESUMABLE: ClassVar[frozenset[str]] = frozenset()

    dataset: str = "ml-latest-small"
    path: str = ""  # folder or file; a URL needs sha256. Empty: the bundled ml-latest-small
    sha256: str = ""
    split: Literal["random", "temporal", "cold_items", "new_users"] = "random"
    test_fraction: float = 0.2
    valid_fraction: float = 0.1
    temporal_k: int = 5
    cold_item_fraction: float = 0.2
    new_user_fraction: float = 0.1  # of the users with test interactions (split new_users)
    seed: int = 0
    # Each interaction's weight in the graph: none | rating | count | <interaction table column>,
    # or log1p(<one of them>) (see gnnrec/data/edge_weights.py)
    edge_weight: str = "none"
    user_text_items: int = 20
    # A user's text: "template" (their fields and liked items, user_template) or "profile" (the
    # description gnnrec profile wrote for them into profiles_path, a .jsonl file)
    user_text: Literal["template", "profile"] = "template"
    profiles_path: str = ""
    # Text templates over field names (see gnnrec/data/templates.py); empty: "Field: value."
    # sentences of every field, and for users "Liked: <best-rated training items>."
    item_template: str = ""  # e.g. "{title}. Genres: {genres}. Tags: {tags}."
    user_template: str = ""  # e.g. "{profile}. Liked: {liked}."
    options: dict[str, Any] = field(default_factory=dict)
    # Update tables appended to the training interactions, in order (written by `gnnrec update`
    # into each version of a run; see gnnrec/data/updates.py)
    updates: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("test_fraction", "valid_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"data.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("cold_item_fraction", "new_user_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"data.{name} must be in (0, 1), got {getattr(self, name)}")
        if self.temporal_k < 1:
            raise ValueError(f"data.temporal_k must be at least 1, got {self.temporal_k}")
        if self.test_fraction + self.valid_fraction >= 1.0:
            raise ValueError(
                f"data.test_fraction + data.valid_fraction must be below 1, got "
                f"{self.test_fraction} + {self.valid_fraction}"
            )
        if self.user_text == "profile" and not self.profiles_path:
            raise ValueError(
                'data.user_text = "profile" reads data.profiles_path, which is empty: give the '
                ".jsonl file gnnrec profile wrote"
            )
        self._edge_weight = EdgeWeight.parse(self.edge_weight)
        spec = dataset_spec(self.dataset)
        for name in ("item_template", "user_template"):
            template_fields(getattr(self, name))  # raises on anything but bare field names
        self._options = build_options(spec, self.options)

    @property
    def edge_weight_spec(self) -> EdgeWeight:
        """``edge_weight`` parsed."""
        return self._edge_weight

    @property
    def dataset_options(self) -> Any:
        """``options`` as the dataset's typed dataclass (None for a dataset without options)."""
        return self._options
