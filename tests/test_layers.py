"""The layers import one way: common -> kernels -> data -> encoders -> models -> train ->
distributed ->
the app (gnnrec/: config, pipeline, run, API) -> bench -> the CLI and its executable. Every
import, also one inside a function, must point to the same layer or one below, and no modules
import each other in a cycle (imports under ``if TYPE_CHECKING:``, for annotations only, are
not run and do not count)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    "common",
    "kernels",
    "data",
    "encoders",
    "models",
    "train",
    "distributed",
    "gnnrec",
    "bench",
]
FOLDER_OF = {"gnnrec": "gnnrec", **{name: name for name in LAYERS}}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if module in ("gnnrec.cli", "gnnrec.commands", "gnnrec.__main__"):
        return len(LAYERS)  # the CLI, its commands and the executable sit on top of everything
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return LAYERS.index("gnnrec")


def modules() -> dict[str, Path]:
    found = {}
    for folder in LAYERS:
        package = "gnnrec" if folder == "gnnrec" else f"gnnrec.{folder}"
        for path in sorted((ROOT / folder).glob("*.py")):
            found[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The gnnrec modules ``name`` imports (``from pkg import module`` counts as the module)."""
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # imports for type annotations only are never run
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        found.update(t for t in targets if t.split(".")[0] == "gnnrec" and t != name)
    return found


GRAPH = {name: imports_of(name, path, set(modules())) for name, path in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    upward = sorted(t for t in GRAPH[module] if layer_of(t) > layer_of(module))
    assert not upward, f"{module} ({LAYERS[min(layer_of(module), 7)]}) imports upward: {upward}"


def test_no_import_cycles():
    """Depth-first search for a back edge among gnnrec's own modules (packages' ``__init__``
    importing their submodules is the usual direction and counts too)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH.get(node, ())):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)


def test_the_check_sees_an_upward_import(tmp_path):
    """The checker itself: a data module importing the trainer is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from gnnrec.train.trainer import Trainer\n")
    targets = imports_of("gnnrec.data.bad", bad, set(GRAPH))
    assert "gnnrec.train.trainer" in targets
    assert layer_of("gnnrec.train.trainer") > layer_of("gnnrec.data.bad")
