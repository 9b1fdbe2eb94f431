"""The CSR structure operations every layer shares (kernels/csr.py): the transpose, symmetry
and the GCN scales, against dense matrices."""

from __future__ import annotations

import torch
from hypothesis import given
from strategies import csr_graphs

from gnnrec.kernels.csr import edge_rows, gcn_scales, same_structure, transpose_csr


def dense(indptr: torch.Tensor, indices: torch.Tensor, num_cols: int) -> torch.Tensor:
    out = torch.zeros(indptr.numel() - 1, num_cols)
    out.index_put_(
        (edge_rows(indptr), indices.long()), torch.ones(indices.numel()), accumulate=True
    )
    return out


@given(csr_graphs())
def test_transpose_is_the_dense_transpose_and_keeps_edge_identity(graph):
    indptr, indices, m = graph
    t_indptr, t_indices, perm = transpose_csr(indptr, indices, m)
    assert torch.equal(dense(t_indptr, t_indices, indptr.numel() - 1), dense(indptr, indices, m).T)
    assert torch.equal(indices.long()[perm], edge_rows(t_indptr))  # edge k of A^T is perm[k]
    back_indptr, back_indices, _ = transpose_csr(t_indptr, t_indices, indptr.numel() - 1)
    assert (
        same_structure(back_indptr, back_indices, indptr, indices)
        == bool(
            all(  # twice is the identity when each row's columns were sorted
                torch.equal(row, row.sort().values)
                for row in torch.split(indices.long(), (indptr[1:] - indptr[:-1]).tolist())
            )
        )
    )


@given(csr_graphs())
def test_gcn_scales_are_inverse_square_root_degrees(graph):
    indptr, indices, m = graph
    a = dense(indptr, indices, m)
    row, col = gcn_scales(indptr, indices, m)
    expected_row = torch.where(a.sum(1) > 0, a.sum(1).rsqrt(), 0.0)
    expected_col = torch.where(a.sum(0) > 0, a.sum(0).rsqrt(), 0.0)
    torch.testing.assert_close(row, expected_row)
    torch.testing.assert_close(col, expected_col)
