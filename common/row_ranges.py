"""Cutting the rows of a CSR into consecutive ranges of bounded work (numpy only)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def row_ranges(
    indptr: np.ndarray, max_edges: int, max_rows: int | None = None
) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges ``[r0, r1)`` covering ``indptr``'s rows, each with at most
    ``max_edges`` edges and ``max_rows`` rows (or a single row of more edges)."""
    n, r0 = indptr.size - 1, 0
    while r0 < n:
        r1 = int(np.searchsorted(indptr, indptr[r0] + max_edges, side="right")) - 1
        r1 = min(max(r1, r0 + 1), n, n if max_rows is None else r0 + max_rows)
        yield r0, r1
        r0 = r1
