"""Run configuration: the components' own keyword-only dataclasses (``[data]``: DataConfig,
``[encoder]``: EncoderConfig, ``[model]``: ModelConfig, ``[train]``: TrainConfig, ``[eval]``:
EvalConfig, ``[parallel]``: ParallelLayout) gathered in :class:`RunConfig`, filled from a
recipe, a TOML file and ``--set section.key=value`` overrides, and written back into every
run directory."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from gnnrec.common.atomic_files import write_text_atomic
from gnnrec.common.typed_fields import checked_fields, choices_of, field_docs, unknown_keys
from gnnrec.data import DataConfig
from gnnrec.distributed.layout import ParallelLayout
from gnnrec.encoders.config import EncoderConfig
from gnnrec.models.config import ModelConfig
from gnnrec.train.config import TrainConfig
from gnnrec.train.evaluate import RATING_METRICS, EvalConfig
from gnnrec.train.trackers import TrackConfig


@dataclass(kw_only=True)
class RunConfig:
    """A whole run: where it writes (``run_dir``) and every component's section."""

    run_dir: str = "runs/demo"
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    parallel: ParallelLayout = field(default_factory=ParallelLayout)
    track: TrackConfig = field(default_factory=TrackConfig)

    def __post_init__(self) -> None:
        check_run_dir(self.run_dir)
        rating = self.eval.select in RATING_METRICS
        if self.eval.select != "auto" and rating != (self.train.objective == "mse"):
            raise ValueError(
                f"eval.select = {self.eval.select!r} does not measure a "
                f"train.objective = {self.train.objective!r} model: choose "
                f"{'rmse or mae' if self.train.objective == 'mse' else 'recall@20 or ndcg@20'}"
            )
        if self.train.objective == "bpr+simgcl" and (
            self.model.name not in ("gcn", "lightgcn", "gat") or self.model.layers < 1
        ):
            raise ValueError(
                "train.objective = 'bpr+simgcl' perturbs each propagation layer's output: it "
                f"needs model.name gcn, lightgcn or gat with layers >= 1, not "
                f"{self.model.name} with {self.model.layers} layers"
            )
        if self.train.mode == "sampled" and len(self.train.fanouts) != self.model.layers:
            raise ValueError(
                f"train.fanouts has {len(self.train.fanouts)} hops but model.layers is "
                f"{self.model.layers}: sampled training needs one fanout per layer"
            )
        if self.train.relation_fanouts and (
            self.train.mode != "sampled" or self.model.relations != "typed"
        ):
            raise ValueError(
                "train.relation_fanouts samples each relation on its own: it needs "
                "train.mode = 'sampled' and model.relations = 'typed'"
            )


def check_run_dir(run_dir: str) -> None:
    """``ValueError`` for a run directory name that is empty, blank, padded with spaces or holds
    control characters: an error, never a fallback to the default folder."""
    if not isinstance(run_dir, str) or not run_dir.strip():
        raise ValueError(f"run_dir must name a folder, got {run_dir!r}")
    if run_dir != run_dir.strip() or any(ord(c) < 32 or c == "\x7f" for c in run_dir):
        raise ValueError(
            f"run_dir {run_dir!r} starts or ends with spaces or holds control characters; "
            "give a plain folder name"
        )


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """``cls`` from ``values``, every key and type checked; ``where``: the section ("" for the
    whole run configuration), named in every error."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(unknown_keys(unknown, known, where))
    kwargs = {}
    for name, value in checked_fields(cls, values, where).items():
        default = (
            known[name].default_factory()
            if known[name].default_factory is not dataclasses.MISSING
            else known[name].default
        )
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{_key(where, name)} must be a table")
            value = _build(type(default), value, _key(where, name))
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}" if where else str(err)) from None


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    return _build(RunConfig, values, "")


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
    write_text_atomic(path, tomli_w.dumps(dataclasses.asdict(config)))


def changed_on_resume(saved: RunConfig, new: RunConfig) -> list[str]:
    """``section.key`` of every setting that differs between ``saved`` and ``new`` and that its
    section does not declare resumable (each section's ``RESUMABLE``)."""
    changed = []
    for f in dataclasses.fields(RunConfig):
        old, now = getattr(saved, f.name), getattr(new, f.name)
        if not dataclasses.is_dataclass(now):
            continue
        for key in (g.name for g in dataclasses.fields(now)):
            if getattr(old, key) != getattr(now, key) and key not in type(now).RESUMABLE:
                changed.append(f"{f.name}.{key}")
    return changed


def _absolute(path: str) -> str:
    """A local path made absolute (empty strings and URLs stay as they are)."""
    if not path or "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """``config`` with every local path it names made absolute (``data.path``, the dataset's
    ``*_path`` options, ``encoder.model``/``cache_dir``, ``parallel.storage_path``), so the
    config saved in a run directory works from any folder."""
    options = {
        key: _absolute(value) if key.endswith("_path") and isinstance(value, str) else value
        for key, value in config.data.options.items()
    }
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, path=_absolute(config.data.path), options=options),
        encoder=dataclasses.replace(
            config.encoder,
            model=_absolute(config.encoder.model),
            cache_dir=_absolute(config.encoder.cache_dir),
        ),
        parallel=dataclasses.replace(
            config.parallel, storage_path=_absolute(config.parallel.storage_path)
        ),
    )


def documented_toml(config: RunConfig) -> str:
    """``config`` as TOML with every key documented above it: what it does (the field's
    comments), its choices when it has a fixed set, and whether a resumed run may change it."""
    lines = [f"run_dir = {json.dumps(config.run_dir)}"]
    for section in dataclasses.fields(RunConfig):
        value = getattr(config, section.name)
        if not dataclasses.is_dataclass(value):
            continue
        lines += ["", f"[{section.name}]"]
        docs, choices = field_docs(type(value)), choices_of(type(value))
        tables = []  # dict fields: their own [section.key] tables, after the plain keys
        for f in dataclasses.fields(value):
            notes = [docs[f.name]] if docs[f.name] else []
            if f.name in choices:
                notes.append(f"one of: {', '.join(map(str, choices[f.name]))}")
            if f.name in type(value).RESUMABLE:
                notes.append("may change when the run resumes")
            comments = [f"# {note}" for note in notes]
            if isinstance(getattr(value, f.name), dict):
                table = tomli_w.dumps(getattr(value, f.name)).strip()
                tables += ["", *comments, f"[{section.name}.{f.name}]", *([table] if table else [])]
                continue
            lines += [*comments, tomli_w.dumps({f.name: getattr(value, f.name)}).strip()]
        lines += tables
    return "\n".join(lines) + "\n"
