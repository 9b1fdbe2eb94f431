"""The row-gather kernel (run by the Triton interpreter on the CPU) against indexing, and the
sampler reading its graph through it, as it does from pinned memory on a GPU."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from gnnrec.data import CSR
from gnnrec.kernels import BACKENDS
from gnnrec.train.sampler import NeighborSampler

pytestmark = pytest.mark.skipif("triton" not in BACKENDS, reason="triton is not installed")


@given(
    st.integers(1, 40),
    st.sampled_from([0, 1, 3, 70]),  # 0: a 1-D source; 70: wider than one feature tile
    st.lists(st.integers(0, 10_000), max_size=50),
    st.sampled_from([torch.int64, torch.int32, torch.float32, torch.bfloat16]),
    st.sampled_from([torch.int32, torch.int64]),
)
def test_gather_rows_is_indexing(num_rows, width, picks, dtype, index_dtype):
    from gnnrec.kernels.gather import gather_rows

    shape = (num_rows,) if width == 0 else (num_rows, width)
    src = (torch.arange(num_rows * max(width, 1)) * 7 - 5).view(shape).to(dtype)
    index = torch.tensor([p % num_rows for p in picks], dtype=index_dtype)
    assert torch.equal(gather_rows(src, index, block_n=16, block_f=32), src[index.long()])


def test_gather_rows_refuses_memory_the_device_cannot_read():
    from gnnrec.kernels.gather import gather_rows

    with pytest.raises(ValueError, match="1-D int32/int64"):
        gather_rows(torch.zeros(4), torch.zeros(2))
    with pytest.raises(ValueError, match="contiguous"):
        gather_rows(torch.zeros(4, 4).T, torch.zeros(2, dtype=torch.int64))


def test_sampling_through_the_gather_kernel_matches_indexing():
    from gnnrec.kernels.gather import gather_rows

    g = torch.Generator().manual_seed(3)
    n = 50
    rows, cols = torch.randint(0, n, (400,), generator=g), torch.randint(0, n, (400,), generator=g)
    csr = CSR.from_edges(rows, cols, n, n)
    seeds = torch.tensor([0, 7, 7, 31])
    plain = NeighborSampler(csr, [3, 2])
    through_kernel = NeighborSampler(csr, [3, 2])
    through_kernel.read = gather_rows  # what a GPU sampler of a pinned CSR runs
    a = plain.sample(seeds, torch.Generator().manual_seed(9))
    b = through_kernel.sample(seeds, torch.Generator().manual_seed(9))
    assert torch.equal(a.n_id, b.n_id) and torch.equal(a.csr.indices, b.csr.indices)
    assert torch.equal(a.csr.indptr, b.csr.indptr)


def test_a_cpu_graph_must_be_pinned_to_sample_elsewhere():
    csr = CSR.from_edges(torch.tensor([0, 1]), torch.tensor([1, 0]), 2, 2)
    with pytest.raises(ValueError, match="pin it"):
        NeighborSampler(csr, [2], device="meta")
