"""Hypothesis strategies for awkward graphs: empty rows, no edges, duplicate edges, self-loops,
a hub row, int32 and int64 indices, feature widths that are not powers of two."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from gnnrec.kernels.schedule import ScheduleParams


@st.composite
def csr_graphs(
    draw, max_rows: int = 16, max_cols: int = 16, max_edges: int = 64, square: bool = False
):
    """``(indptr int64 [N+1], indices [E] int32|int64, num_cols)``, rows sorted, duplicates kept,
    sometimes one hub row that holds most edges."""
    n = draw(st.integers(1, max_rows))
    m = n if square else draw(st.integers(1, max_cols))
    rows = draw(st.lists(st.integers(0, n - 1), max_size=max_edges))
    if rows and draw(st.booleans()):
        hub = draw(st.integers(0, n - 1))
        rows += [hub] * draw(st.integers(1, max_edges))
    cols = [draw(st.integers(0, m - 1)) for _ in rows]
    order = sorted(range(len(rows)), key=lambda e: rows[e])
    counts = torch.bincount(torch.tensor(rows, dtype=torch.int64), minlength=n)
    indptr = torch.zeros(n + 1, dtype=torch.int64)
    indptr[1:] = torch.cumsum(counts, 0)
    dtype = draw(st.sampled_from([torch.int32, torch.int64]))
    indices = torch.tensor([cols[e] for e in order], dtype=dtype)
    return indptr, indices, m


def features(num_rows: int, width: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_rows, width, generator=g, dtype=torch.float64).to(dtype)


@st.composite
def tile_settings(draw, reduce_once: bool = True):
    """Tile schedule and tile sizes small enough that tiny graphs reach every path."""
    params = ScheduleParams(
        heavy_threshold=draw(st.integers(1, 12)),
        chunk_edges=draw(st.integers(1, 6)),
        pack_edges=draw(st.integers(1, 10)),
        max_chunks=draw(st.integers(1, 8)),
    )
    return {
        "params": params,
        "block_e": draw(st.sampled_from([1, 2, 4, 16])),
        "block_f": draw(st.sampled_from([None, 2, 8, 16])),
        **({"reduce_once": draw(st.booleans())} if reduce_once else {}),
    }
