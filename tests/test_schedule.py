"""The tile schedule (kernels/schedule.py): every edge in exactly one work item, heavy rows in
chunks whose slots the combine pass reads, and the longest programs first."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import csr_graphs

from gnnrec.kernels.schedule import ScheduleParams, build_schedule


@given(
    csr_graphs(max_rows=24, max_edges=80),
    st.integers(1, 8),
    st.integers(1, 6),
    st.integers(1, 16),
    st.integers(1, 5),
)
def test_items_cover_every_edge_once_longest_programs_first(graph, heavy, chunk, pack, most):
    indptr, _, _ = graph
    params = ScheduleParams(
        heavy_threshold=heavy, chunk_edges=chunk, pack_edges=pack, max_chunks=most
    )
    s = build_schedule(indptr, params)
    covered = torch.zeros(int(indptr[-1]), dtype=torch.int64)
    for start, end in zip(s.item_start.tolist(), s.item_end.tolist()):
        covered[start:end] += 1
    assert bool((covered == 1).all())
    for row, start, end in zip(s.item_row.tolist(), s.item_start.tolist(), s.item_end.tolist()):
        assert indptr[row] <= start < end <= indptr[row + 1]
    degree = indptr.diff()
    assert s.heavy_row.tolist() == torch.nonzero(degree > heavy).flatten().tolist()
    slots = s.item_slot.tolist()
    num_chunks = s.num_slots
    assert slots[:num_chunks] == list(range(num_chunks)) and set(slots[num_chunks:]) <= {-1}
    assert s.program_ptr[: num_chunks + 1].tolist() == list(range(num_chunks + 1))  # one each
    light_degrees = degree[s.item_row[num_chunks:]].tolist()
    assert light_degrees == sorted(light_degrees, reverse=True)  # largest light rows first
    assert int(s.program_ptr[-1]) == s.item_row.numel()
    per_row = s.chunk_ptr.diff()
    assert per_row.numel() == 0 or int(per_row.max()) <= most  # the combine pass stays short
