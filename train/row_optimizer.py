"""Row-wise sparse optimisation of embedding tables: a step reads and writes only the rows its
batch touched, never the whole table, and keeps one number of state per row
(:class:`~gnnrec.train.sharded_table.ShardedTable` applies it to its shard).

Row-wise Adagrad (FBGEMM's ``EXACT_ROWWISE_ADAGRAD``, the default of TorchRec's sharded tables):
for each touched row ``r`` with summed gradient ``g_r`` ``[H]``,

    s_r <- s_r + mean_j g_rj^2,        w_r <- w_r - lr * g_r / (sqrt(s_r) + eps),

with ``s`` ``[N]`` (1/H of the table; Adam's state is twice the table). A dense ``nn.Embedding``
under Adam instead materialises an ``[N, H]`` gradient every step and updates every row.
"""

from __future__ import annotations

import torch

ID_OPTIMIZERS = ("adam", "rowwise_adagrad")


def rowwise_adagrad_(
    weight: torch.Tensor,
    state: torch.Tensor,
    rows: torch.Tensor,
    grads: torch.Tensor,
    lr: float,
    eps: float = 1e-8,
) -> None:
    """In place: rows ``rows`` ``[R]`` (distinct) of ``weight`` ``[N, H]`` and ``state``
    ``[N]`` take one row-wise Adagrad step with their summed gradients ``grads`` ``[R, H]``."""
    grads = grads.to(weight.dtype)
    squares = torch.linalg.vector_norm(grads, dim=1, dtype=torch.float32).square_()
    s = state.index_select(0, rows) + squares.div_(grads.shape[1])
    state.index_copy_(0, rows, s)
    scale = (s.sqrt() + eps).reciprocal_().mul_(-lr).to(weight.dtype)
    # rows are distinct: read, update in place, write back (no [R, H] step buffer; twice as
    # fast as a scattered index_add_ on the CPU)
    updated = weight.index_select(0, rows).addcmul_(grads, scale.unsqueeze(1))
    weight.index_copy_(0, rows, updated)
