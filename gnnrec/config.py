"""Run configuration: one keyword-only dataclass per component, filled from a TOML file and
``--set section.key=value`` overrides, and written back into every run directory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import tomllib

from gnnrec.data.templates import template_fields
from gnnrec.distributed.layout import ParallelLayout
from gnnrec.encoders.config import EncoderConfig
from gnnrec.train.model import ModelConfig
from gnnrec.train.trainer import TrainConfig

DATASETS = ("ml-latest-small", "ml-100k", "ml-1m", "lightgcn", "table", "synthetic")


@dataclass(kw_only=True)
class DataConfig:
    """Which dataset, how it is split, and how user text is built (from training only)."""

    dataset: str = "ml-latest-small"
    path: str = ""  # folder or file; a URL needs sha256. Empty: the bundled ml-latest-small
    sha256: str = ""
    split: str = "random"
    test_fraction: float = 0.2
    valid_fraction: float = 0.1
    temporal_k: int = 5
    cold_item_fraction: float = 0.2
    seed: int = 0
    user_text_items: int = 20
    # Text templates over field names (see gnnrec/data/templates.py); empty: "Field: value."
    # sentences of every field, and for users "Liked: <best-rated training items>."
    item_template: str = ""  # e.g. "{title}. Genres: {genres}. Tags: {tags}."
    user_template: str = ""  # e.g. "{profile}. Liked: {liked}."
    # dataset = "table": an interaction file plus optional user/item files with text columns
    users_path: str = ""
    items_path: str = ""
    user_edges_path: str = ""  # src,dst table of user ids
    item_edges_path: str = ""  # src,dst table of item ids
    user_column: str = "user_id"
    item_column: str = "item_id"
    rating_column: str = ""
    timestamp_column: str = ""
    user_text_columns: list[str] = field(default_factory=list)
    item_text_columns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {DATASETS}")
        if self.split not in ("random", "temporal", "cold_items"):
            raise ValueError("split must be 'random', 'temporal' or 'cold_items'")
        for name in ("item_template", "user_template"):
            template_fields(getattr(self, name))  # raises on anything but bare field names


@dataclass(kw_only=True)
class EvalConfig:
    ks: list[int] = field(default_factory=lambda: [10, 20])
    top_k: int = 10  # recommendations written per user

    def __post_init__(self) -> None:
        if 20 not in self.ks or min(self.ks) < 1:
            raise ValueError("eval.ks must be positive and include 20")


@dataclass(kw_only=True)
class RunConfig:
    run_dir: str = "runs/demo"
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    parallel: ParallelLayout = field(default_factory=ParallelLayout)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = (
            known[name].default_factory()
            if known[name].default_factory is not dataclasses.MISSING
            else known[name].default
        )
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{name} must be a table")
            value = _build(type(default), value, f"{where}.{name}")
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    return _build(RunConfig, values, "config")


def add_override_argument(parser, help: str = "override, e.g. --set train.epochs=5") -> None:
    """``--set KEY=VALUE`` (repeatable) on an argparse parser, collected in ``overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["train.epochs=5", "model.hidden=32"]`` into a nested dict (values parsed as TOML,
    bare words as strings)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        *parents, leaf = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return values


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: RunConfig | None = None,
) -> RunConfig:
    """``base`` (default: defaults), updated by the TOML file, then by the overrides."""
    values = dataclasses.asdict(base) if base is not None else {}
    if path is not None:
        with open(path, "rb") as f:
            try:
                file_values = tomllib.load(f)
            except tomllib.TOMLDecodeError as err:
                raise ValueError(f"{path}: {err}") from None
        for section, content in file_values.items():
            if isinstance(content, dict) and isinstance(values.get(section), dict):
                values[section].update(content)
            else:
                values[section] = content
    return config_from_dict(apply_overrides(values, overrides or []))


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(tomli_w.dumps(dataclasses.asdict(config)))
