"""Versions of a run: ``gnnrec update`` writes each into ``<run_dir>/versions/NNNN/`` (a
complete run directory of its own: ``config.toml``, ``model.pt``, ``data.json``, metrics,
checkpoints and the update table it added) and then points ``<run_dir>/versions/CURRENT`` at
it, replacing that one-line file atomically. Everything that loads a run loads its current
version; a version is never changed once it is current, so a reader never sees one half
written."""

from __future__ import annotations

from pathlib import Path

from gnnrec.common.atomic_files import write_text_atomic

VERSIONS = "versions"
CURRENT = "CURRENT"


def current_version(run_dir: str | Path) -> str | None:
    """The name of ``run_dir``'s current version (``"0001"``), or None before any update."""
    pointer = Path(run_dir) / VERSIONS / CURRENT
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    if not (name.isdigit() and (Path(run_dir) / VERSIONS / name / "model.pt").is_file()):
        raise ValueError(f"{pointer}: names no finished version ({name!r})")
    return name


def current_dir(run_dir: str | Path) -> Path:
    """The folder that holds ``run_dir``'s current model: its current version's, else its own."""
    name = current_version(run_dir)
    return Path(run_dir) if name is None else Path(run_dir) / VERSIONS / name


def next_version(run_dir: str | Path) -> str:
    """The name the next version of ``run_dir`` gets (one above the current one)."""
    name = current_version(run_dir)
    return f"{(int(name) if name else 0) + 1:04d}"


def publish(run_dir: str | Path, name: str) -> None:
    """Makes version ``name`` the current one (atomically)."""
    write_text_atomic(Path(run_dir) / VERSIONS / CURRENT, name + "\n")
