"""Building a graph store larger than memory from chunked edge lists on disk.

The edges come as chunks of ``[2, c]`` ``(row, col)`` pairs (rows are message targets, as in
:class:`~gnnrec.data.graph_store.CSR`), e.g. the ``.npy`` part files the synthetic generator
streams. The build holds ``O(N)`` counters plus at most ``memory_budget`` bytes of edges, never
the edge list:

1. count each row's edges, chunk by chunk, into ``indptr``;
2. place each chunk's columns at their rows' cursors in a memory-mapped ``indices`` file (random
   writes that the page cache absorbs and writes back);
3. sort the columns of each block of rows that fits the budget, in place, counting duplicates;
4. with ``coalesce`` and duplicates present, stream the blocks once more into the final file
   without them.

The result is the folder format of :meth:`GraphStore.save` (``.npy`` arrays and a manifest),
written under a temporary name and renamed, so :meth:`GraphStore.load` maps it instantly. Only
numpy (and the standard library) is needed, so the build runs in small processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from gnnrec.common.atomic_files import staged_folder
from gnnrec.common.row_ranges import row_ranges

FORMAT_VERSION = 1  # GraphStore's folder format
INDEX_DTYPE_LIMIT = 2**31
BYTES_PER_EDGE = 48  # peak working bytes per edge held by one step below


def _pieces(chunks: Iterable[np.ndarray], max_edges: int, symmetrize: bool) -> Iterator:
    """``(rows, cols)`` int64 pieces of at most ``max_edges`` edges (both directions when
    ``symmetrize``)."""
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[0] != 2:
            raise ValueError(f"edge chunks must be [2, c] arrays, got shape {chunk.shape}")
        step = max_edges // 2 if symmetrize else max_edges
        for start in range(0, chunk.shape[1], step):
            rows = chunk[0, start : start + step].astype(np.int64)
            cols = chunk[1, start : start + step].astype(np.int64)
            if symmetrize:
                rows, cols = np.concatenate([rows, cols]), np.concatenate([cols, rows])
            yield rows, cols


def _compress(
    pieces: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
    num_nodes: int,
    folder: Path,
    name: str,
    max_edges: int,
    coalesce: bool,
) -> dict:
    """Steps 1-4 of the module docstring for one orientation; writes ``{name}_indptr.npy`` and
    ``{name}_indices.npy`` into ``folder`` and returns their manifest entries."""
    counts = np.zeros(num_nodes, dtype=np.int64)
    for rows, cols in pieces():
        bad = (rows < 0) | (rows >= num_nodes) | (cols < 0) | (cols >= num_nodes)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"edge ({rows[k]}, {cols[k]}) has a node outside [0, {num_nodes})")
        counts += np.bincount(rows, minlength=num_nodes)
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    del counts
    dtype = np.int32 if num_nodes < INDEX_DTYPE_LIMIT else np.int64
    placed_file, indices_file = folder / f".{name}_placed.npy", folder / f"{name}_indices.npy"
    placed = np.lib.format.open_memmap(
        placed_file, mode="w+", dtype=dtype, shape=(int(indptr[-1]),)
    )
    cursor = indptr[:-1].copy()
    for rows, cols in pieces():
        order = np.argsort(rows, kind="stable")
        rows, cols = rows[order], cols[order]
        del order
        uniq, first, repeats = np.unique(rows, return_index=True, return_counts=True)
        placed[cursor[rows] + np.arange(rows.size) - np.repeat(first, repeats)] = cols
        cursor[uniq] += repeats
    del cursor
    distinct = np.zeros(num_nodes, dtype=np.int64)  # distinct columns per row
    for r0, r1 in row_ranges(indptr, max_edges):
        lo, hi = indptr[r0], indptr[r1]
        local_rows = np.repeat(np.arange(r1 - r0, dtype=np.int64), np.diff(indptr[r0 : r1 + 1]))
        keys = local_rows * num_nodes + placed[lo:hi]
        keys.sort()
        placed[lo:hi] = keys % num_nodes
        fresh = np.ones(keys.size, dtype=bool)
        fresh[1:] = keys[1:] != keys[:-1]
        distinct[r0:r1] = np.bincount(local_rows[fresh], minlength=r1 - r0)
    placed.flush()
    if coalesce and int(distinct.sum()) < int(indptr[-1]):
        final_indptr = np.zeros_like(indptr)
        np.cumsum(distinct, out=final_indptr[1:])
        final = np.lib.format.open_memmap(
            indices_file, mode="w+", dtype=dtype, shape=(int(final_indptr[-1]),)
        )
        for r0, r1 in row_ranges(indptr, max_edges):
            lo, hi = indptr[r0], indptr[r1]
            local_rows = np.repeat(np.arange(r1 - r0, dtype=np.int64), np.diff(indptr[r0 : r1 + 1]))
            cols = np.asarray(placed[lo:hi], dtype=np.int64)
            fresh = np.ones(cols.size, dtype=bool)
            fresh[1:] = (cols[1:] != cols[:-1]) | (local_rows[1:] != local_rows[:-1])
            final[final_indptr[r0] : final_indptr[r1]] = cols[fresh]
        final.flush()
        del final, placed
        os.remove(placed_file)
        indptr = final_indptr
    else:
        del placed
        os.replace(placed_file, indices_file)
    np.save(folder / f"{name}_indptr.npy", indptr)
    num_edges = int(indptr[-1])
    return {
        f"{name}_indptr": {
            "file": f"{name}_indptr.npy",
            "dtype": "int64",
            "shape": [num_nodes + 1],
        },
        f"{name}_indices": {
            "file": indices_file.name,
            "dtype": np.dtype(dtype).name,
            "shape": [num_edges],
        },
    }


def build_csr_out_of_core(
    chunks: Callable[[], Iterable[np.ndarray]],
    num_nodes: int,
    folder: str | Path,
    *,
    memory_budget: int = 1 << 30,
    symmetrize: bool = False,
    coalesce: bool = True,
    num_users: int = 0,
    num_items: int = 0,
) -> Path:
    """Writes the graph store of the edges from ``chunks()`` (called for every pass; each call
    yields the chunks anew) into ``folder``: the CSR, and the CSC unless ``symmetrize`` (every
    edge in both directions) makes them one. ``memory_budget``: bytes of edge buffers;
    ``coalesce``: merge duplicate edges."""
    folder = Path(folder)
    max_edges = max(memory_budget // BYTES_PER_EDGE, 2)
    with staged_folder(folder, "graph store") as tmp:

        def forward():
            return _pieces(chunks(), max_edges, symmetrize)

        def backward():
            return ((cols, rows) for rows, cols in forward())

        arrays = _compress(forward, num_nodes, tmp, "csr", max_edges, coalesce)
        if not symmetrize:
            arrays.update(_compress(backward, num_nodes, tmp, "csc", max_edges, coalesce))
        manifest = {
            "format_version": FORMAT_VERSION,
            "num_nodes": num_nodes,
            "num_edges": arrays["csr_indices"]["shape"][0],
            "symmetric": symmetrize,
            "num_users": num_users,
            "num_items": num_items,
            "arrays": arrays,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def npy_chunks(paths: Iterable[str | Path]) -> Callable[[], Iterator[np.ndarray]]:
    """``chunks`` for :func:`build_csr_out_of_core` from ``.npy`` files of ``[2, c]`` pairs,
    each memory-mapped while it is read."""
    paths = [Path(p) for p in paths]

    def chunks() -> Iterator[np.ndarray]:
        for path in paths:
            yield np.load(path, mmap_mode="r")

    return chunks
