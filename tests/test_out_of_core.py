"""The out-of-core graph build: same graph as the in-memory build, and a memory budget it keeps
(checked by running it in a process whose private memory the kernel caps)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.data.graph_store import CSR, GraphStore
from gnnrec.data.out_of_core import BYTES_PER_EDGE, build_csr_out_of_core

MODULE = Path(__file__).parents[1] / "data" / "out_of_core.py"


def _same_store(a: GraphStore, b: GraphStore) -> None:
    for name in ("csr", "csc"):
        x, y = getattr(a, name), getattr(b, name)
        assert torch.equal(torch.as_tensor(x.indptr), torch.as_tensor(y.indptr)), name
        assert torch.equal(x.indices.long(), y.indices.long()), name
    assert a.symmetric == b.symmetric


@given(
    st.integers(1, 12),
    st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=80),
    st.integers(1, 9),
    st.integers(2, 20),
    st.booleans(),
    st.booleans(),
)
def test_matches_the_in_memory_build(n, edges, num_chunks, budget_edges, symmetrize, coalesce):
    edges = [(r % n, c % n) for r, c in edges]
    pairs = np.array(edges, dtype=np.int64).reshape(-1, 2).T
    chunks = np.array_split(pairs, num_chunks, axis=1)

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_csr_out_of_core(
            lambda: iter(chunks),
            n,
            Path(tmp) / "store",
            memory_budget=budget_edges * BYTES_PER_EDGE,
            symmetrize=symmetrize,
            coalesce=coalesce,
        )
        built = GraphStore.load(folder)
        rows, cols = torch.from_numpy(pairs[0]), torch.from_numpy(pairs[1])
        if symmetrize:
            rows, cols = torch.cat([rows, cols]), torch.cat([cols, rows])
        csr = CSR.from_edges(rows, cols, n, n, coalesce=coalesce)
        expected = (
            GraphStore(csr, csr, True)
            if symmetrize
            else GraphStore(csr, CSR.from_edges(cols, rows, n, n, coalesce=coalesce), False)
        )
        _same_store(built, expected)
        assert not list(Path(tmp).glob(".store-*"))  # no temporary folder left behind


CAPPED = textwrap.dedent("""
    import importlib.util, resource, sys
    from pathlib import Path
    import numpy as np

    spec = importlib.util.spec_from_file_location("out_of_core", sys.argv[1])
    ooc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ooc)
    def data_bytes():
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    cap = data_bytes() + int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    parts = sorted(Path(sys.argv[2]).glob("part-*.npy"))
    if sys.argv[4] == "whole":  # the control: hold the whole edge list once
        edges = np.concatenate([np.load(p) for p in parts], axis=1)
        print("held", edges.nbytes)
    else:
        ooc.build_csr_out_of_core(
            ooc.npy_chunks(parts), int(sys.argv[5]), Path(sys.argv[2]) / "store",
            memory_budget=int(sys.argv[6]), symmetrize=True,
        )
        print("built")
""")


@pytest.mark.slow
def test_builds_a_graph_several_times_larger_than_its_memory(tmp_path):
    """8M edges (64 MB of input pairs; 64 MB of int32 indices once symmetrised) built in a
    process allowed 24 MB of private memory beyond its start: holding the edge list once fails
    there, the out-of-core build does not."""
    num_nodes, chunk, num_chunks = 100_000, 1_000_000, 8
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, num_nodes + 1)
    for k in range(num_chunks):
        rows = rng.integers(0, num_nodes, chunk, dtype=np.int32)
        cols = rng.choice(num_nodes, chunk, p=weights / weights.sum()).astype(np.int32)
        np.save(tmp_path / f"part-{k:03d}.npy", np.stack([rows, cols]))
    cap, budget = 24 << 20, 8 << 20
    env_args = [sys.executable, "-c", CAPPED, str(MODULE), str(tmp_path), str(cap)]
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    whole = subprocess.run([*env_args, "whole"], capture_output=True, text=True, env=env)
    assert whole.returncode != 0 and "MemoryError" in whole.stderr
    built = subprocess.run(
        [*env_args, "build", str(num_nodes), str(budget)], capture_output=True, text=True, env=env
    )
    assert built.returncode == 0 and "built" in built.stdout, built.stderr
    store = GraphStore.load(tmp_path / "store")
    pairs = torch.from_numpy(
        np.concatenate([np.load(p) for p in sorted(tmp_path.glob("part-*.npy"))], axis=1)
    ).long()
    rows, cols = torch.cat([pairs[0], pairs[1]]), torch.cat([pairs[1], pairs[0]])
    expected = CSR.from_edges(rows, cols, num_nodes, num_nodes)
    assert store.symmetric and store.num_edges == expected.num_edges
    assert torch.equal(store.csr.indptr, expected.indptr)
    assert torch.equal(store.csr.indices, expected.indices)
