"""The README's Python examples run as written (each in a fresh interpreter, in a scratch
folder) and do what they say."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_example(code: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_readme_has_its_four_examples():
    assert len(EXAMPLES) == 4


@pytest.mark.slow
def test_run_level_example_trains_recommends_and_exports(tmp_path):
    out = run_example(EXAMPLES[0], tmp_path)
    assert out.startswith("Recall@20 ")
    run_dir = tmp_path / "runs" / "api"
    for name in ("metrics.json", "model.pt", "recommendations.csv", "config.toml"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "export" / "user_embeddings.npy").is_file()
    assert "'item_embeddings.npy'" in out and "'seen_items.npy'" in out
    *_, folded, recorded, similar, why = out.splitlines()
    folded, recorded, similar = (ast.literal_eval(line) for line in (folded, recorded, similar))
    assert why.startswith("Recommended ")
    for ranked in (folded, recorded, similar):
        assert len(ranked) == 3 and all(isinstance(s, float) for _, s in ranked)
    assert [i for i, _ in folded] == [i for i, _ in recorded]  # the same two movies
    assert not {"1", "2571"} & {i for i, _ in recorded} and "1" not in {i for i, _ in similar}


def test_building_blocks_example(tmp_path):
    out = run_example(EXAMPLES[1], tmp_path).splitlines()
    assert out == ["torch.Size([7, 16])", "tensor([0, 1])"]


def test_hetero_loader_example(tmp_path):
    pairs, weights, same = run_example(EXAMPLES[2], tmp_path).splitlines()
    assert same == "True"
    users, positives = (ast.literal_eval(p) for p in pairs.replace("] [", "]|[").split("|"))
    assert users == [0, 0] and len(positives) == 2  # the first two pairs: user 0's
    assert ast.literal_eval(weights) == [5.0, 3.0, 4.0, 1.0, 2.0]


def test_knowledge_table_example(tmp_path):
    *_, types, hetero, vias = run_example(EXAMPLES[3], tmp_path).splitlines()
    entities, relations = ast.literal_eval(types.replace("] [", "], ["))
    assert entities == ["genre", "person"]
    assert relations == ["has_genre", "directed_by", "starring"]
    count, edges = hetero.split(" ", 1)
    assert count == "2" and ast.literal_eval(edges) == [[0, 1], [0, 0]]  # m0, m1 -> p_ann
    assert ast.literal_eval(vias) == ["g_noir", "p_ann"]  # the paths through u0's items
