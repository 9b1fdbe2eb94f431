"""Device names in configuration: ``auto`` (a GPU when torch sees one), ``cpu``, ``cuda`` or
``cuda:N``."""

from __future__ import annotations

import re

import torch


def check_device_name(name: str, where: str) -> None:
    """Raises ``ValueError`` naming ``where`` (e.g. ``train.device``) for anything else."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ValueError(f"{where} must be auto, cpu, cuda or cuda:N, got {name!r}")


def resolve_device(name: str, where: str) -> torch.device:
    """The device ``name`` means here; a GPU asked for where torch sees none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{where} = {name!r}, but torch sees no GPU here")
    return torch.device(name)
