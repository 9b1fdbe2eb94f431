"""Every artifact belongs to its run. ``model.pt``, ``checkpoints/last.pt`` and an export carry
the provenance of what produced them: the model, every setting that shapes training (each
section's non-resumable keys, paths aside: the data's own fingerprint stands for them) and the
fingerprints of the data and, for a text model, of its text. Loading an artifact under another
provenance is refused, naming what differs; the checksum inside a checkpoint proves only that it
is whole, not whose it is."""

from __future__ import annotations

import dataclasses
from typing import Any

from gnnrec.config import RunConfig
from gnnrec.train.checkpoint import PROVENANCE
from gnnrec.train.checkpoint import check_provenance as check_recorded

__all__ = [
    "PROVENANCE",
    "check_provenance",
    "run_provenance",
    "shaping_settings",
    "unchecked_data",
]

SHAPING_SECTIONS = ("data", "encoder", "model", "train")
PATH_SETTINGS = frozenset(
    {
        "data.path",
        "data.sha256",
        "data.updates",
        "data.profiles_path",
        "encoder.model",
        "encoder.cache_dir",
    }
)


def shaping_settings(config: RunConfig) -> dict[str, Any]:
    """``section.key`` -> value of every setting a resumed or reloaded run must keep: the
    non-resumable keys of the data, encoder, model and train sections, each dataset option
    but its ``*_path`` ones, and no path (a run's data may move; its fingerprint may not)."""
    settings: dict[str, Any] = {}
    for name in SHAPING_SECTIONS:
        section = getattr(config, name)
        for f in dataclasses.fields(section):
            key = f"{name}.{f.name}"
            if f.name in type(section).RESUMABLE or key in PATH_SETTINGS:
                continue
            value = getattr(section, f.name)
            if key == "data.options":
                for option, v in sorted(value.items()):
                    if not option.endswith("_path"):
                        settings[f"data.options.{option}"] = v
                continue
            settings[key] = list(value) if isinstance(value, tuple) else value
    return settings


def run_provenance(config: RunConfig, fingerprint: dict) -> dict[str, Any]:
    """What an artifact of the run ``config`` trained on the data of ``fingerprint`` (a
    :func:`~gnnrec.pipeline.data_fingerprint`) records."""
    text = fingerprint.get("text_sha256") if config.model.text_features else None
    return {
        "model": config.model.name,
        "data_sha256": fingerprint["sha256"],
        "text_sha256": text,
        "settings": shaping_settings(config),
    }


def unchecked_data(provenance: dict[str, Any], allow_data_change: bool) -> dict[str, Any]:
    """``provenance`` to check an artifact against: without its data and text fingerprints
    when the data is allowed to change."""
    if not allow_data_change:
        return provenance
    return {**provenance, "data_sha256": None, "text_sha256": None}


def check_provenance(state: dict[str, Any], expected: dict[str, Any], path: Any) -> None:
    """:func:`gnnrec.train.checkpoint.check_provenance`, where a setting that an artifact does
    not record (gnnrec gained it after the artifact was written) counts as that setting's
    default: what the older gnnrec did."""
    saved = state.get(PROVENANCE)
    if saved is not None:
        recorded = saved.get("settings", {})
        defaults = shaping_settings(RunConfig())
        added = {k: v for k, v in defaults.items() if k not in recorded}
        state = {**state, PROVENANCE: {**saved, "settings": {**added, **recorded}}}
    check_recorded(state, expected, path)
