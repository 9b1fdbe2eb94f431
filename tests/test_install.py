"""The folders install as one namespace, from an editable install and from a built wheel."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import gnnrec

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = [
    "bench",
    "common",
    "data",
    "distributed",
    "encoders",
    "kernels",
    "models",
    "serve",
    "train",
]


def test_subpackages_resolve_to_the_top_level_folders():
    for name in SUBPACKAGES:
        module = importlib.import_module(f"gnnrec.{name}")
        assert Path(module.__file__).resolve().parent == ROOT / name


def test_no_bare_top_level_modules_on_sys_path():
    """``import kernels`` never finds our folder (a package of that name installed in the
    virtual environment, e.g. Hugging Face's ``kernels`` beside vLLM, is not ours)."""
    for name in SUBPACKAGES:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
        assert origin is None or not origin.is_relative_to(ROOT / name), name


def test_wheel_contains_and_imports_every_subpackage(tmp_path):
    # Build from a copy of the tracked files: an in-tree build would leave build/ behind, whose
    # stale modules a later build could package.
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
    )
    wheel = next((tmp_path / "dist").glob("gnnrec-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "gnnrec/data/ml-latest-small/ratings.csv" in names
    assert "gnnrec/data/ml-latest-small/README.txt" in names
    assert not any(n.startswith(("kernels/", "train/", "data/")) for n in names)
    # The licence and the bundled data's own terms travel with the wheel; the metadata says
    # which Python it needs and keeps the heavy dependencies in extras.
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(metadata_name).decode()
    assert "Requires-Python: >=3.11" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    core = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [line for line in core if "extra ==" not in line]
    assert not any(heavy in line for line in core for heavy in ("transformers", "vllm", "ray"))
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import gnnrec, gnnrec.kernels, gnnrec.train.trainer, gnnrec.data;"
        "from gnnrec.data import load_ml_latest_small as f;"
        "import sys; print(gnnrec.__file__); print(len(f().interactions))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0].startswith(str(target)), out
    assert out[1] == "100836"
    assert gnnrec.__version__
