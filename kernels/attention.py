"""Attention aggregation (GAT, Velickovic et al. 2018) from per-node logit terms, on the CPU
without per-edge feature vectors.

For a CSR (row ``i`` lists the sources ``j`` of its messages), ``H`` heads and ``x`` ``[M, H F]``
(head ``h`` in columns ``h F .. (h + 1) F``):

.. math::
    s_{eh} = \\text{dst}_{ih} + \\text{src}_{jh}, \\quad
    \\ell_{eh} = \\text{LeakyReLU}(s_{eh}), \\quad
    \\alpha_{eh} = \\frac{\\exp(\\ell_{eh} - \\max_{e' \\in i} \\ell_{e'h})}
                        {\\sum_{e' \\in i} \\exp(\\ell_{e'h} - \\max_{e' \\in i} \\ell_{e'h})},
    \\quad y_{ih} = \\sum_{e = (i, j)} \\alpha_{eh} \\, d_{eh} \\, x_{jh}

with ``d`` the edge dropout mask over ``1 - p`` (1 without dropout); an empty row gives 0.
Shapes: ``src`` ``[M, H]``, ``dst`` ``[N, H]``; output ``[N, H F]``.

:func:`attention_reference` computes it the plain way (``[E, H, F]`` messages, autograd): the
oracle. :func:`aggregate_attention_torch` keeps per-edge tensors at ``[E, H]``: the weighted
sums are one ``torch.sparse.mm`` per head, and the backward is written out (fp32 accumulation
for fp16/bf16 inputs):

.. math::
    \\partial x_{jh} = \\sum_{e = (i, j)} \\alpha_{eh} d_{eh} \\partial y_{ih}, \\quad
    \\partial\\alpha_{eh} = d_{eh} \\langle \\partial y_{ih}, x_{jh} \\rangle, \\quad
    \\partial\\ell_{eh} = \\alpha_{eh} \\big(\\partial\\alpha_{eh} -
        \\textstyle\\sum_{e' \\in i} \\alpha_{e'h} \\partial\\alpha_{e'h}\\big),

``\\partial s = \\partial\\ell \\cdot (1 \\text{ or the slope})``, ``\\partial src_j`` and
``\\partial dst_i`` the sums of ``\\partial s`` over ``j``'s and ``i``'s edges. The edge dots
``\\langle \\partial y_i, x_j \\rangle`` gather :data:`EDGE_CHUNK` values a side at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gnnrec.kernels.csr import cached_transpose, csr_tensor, edge_rows

EDGE_CHUNK = 1 << 20  # values of [chunk, H F] rows the backward gathers at once (4 MB in fp32)


@dataclass
class EdgeAttention:
    """The attention of :func:`gnnrec.kernels.aggregate`'s ``reduce="attention"``: per-node
    logit terms ``src`` ``[M, H]`` and ``dst`` ``[N, H]``, LeakyReLU's ``negative_slope``,
    and edge dropout with probability ``dropout`` drawn from ``generator`` (training only).
    ``record``: the backend keeps the softmax weights it computed in ``weights`` ``[E, H]``
    (detached; before dropout), so that a caller reads the attention the forward pass used
    without computing it again or any ``[E, H, F]`` tensor."""

    src: torch.Tensor
    dst: torch.Tensor
    negative_slope: float = 0.2
    dropout: float = 0.0
    generator: torch.Generator | None = None
    record: bool = False
    weights: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"attention dropout must be in [0, 1), got {self.dropout}")

    @property
    def heads(self) -> int:
        return self.src.shape[1]

    def keep(self, num_edges: int, device: torch.device) -> torch.Tensor | None:
        """The dropout factors ``d`` ``[E, H]`` (0 or ``1 / (1 - p)``), or None."""
        if self.dropout == 0.0:
            return None
        draw = torch.rand(
            (num_edges, self.heads), generator=self.generator, device=device, dtype=torch.float32
        )
        return (draw >= self.dropout).to(torch.float32) / (1.0 - self.dropout)


def attention_coefficients(
    indptr: torch.Tensor, indices: torch.Tensor, attention: EdgeAttention
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha [E, H], s [E, H])`` in fp32 (fp64 for fp64 logits): the softmax of each row's
    logits, max subtracted, and the pre-activation sums."""
    dtype = torch.float64 if attention.src.dtype == torch.float64 else torch.float32
    rows = edge_rows(indptr)
    cols = indices.long()
    s = attention.dst.to(dtype).index_select(0, rows)
    s = s + attention.src.to(dtype).index_select(0, cols)
    logits = torch.nn.functional.leaky_relu(s, attention.negative_slope)
    index = rows.unsqueeze(1).expand_as(logits)
    num_rows = indptr.numel() - 1
    top = logits.new_full((num_rows, logits.shape[1]), float("-inf"))
    top = top.scatter_reduce(0, index, logits, "amax", include_self=True)
    p = torch.exp(logits - top.index_select(0, rows))
    total = logits.new_zeros((num_rows, logits.shape[1])).index_add_(0, rows, p)
    return p / total.index_select(0, rows), s


def attention_reference(
    indptr: torch.Tensor,
    indices: torch.Tensor,
    x: torch.Tensor,
    attention: EdgeAttention,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """The oracle: ``[E, H, F]`` messages weighted and summed, gradients by autograd (softmax
    by ``torch_geometric.utils.softmax``'s recipe, in ``x``'s dtype). ``keep``: the dropout
    factors ``[E, H]`` to apply (as :meth:`EdgeAttention.keep` draws them)."""
    heads = attention.heads
    rows, cols = edge_rows(indptr), indices.long()
    s = attention.dst[rows] + attention.src[cols]
    logits = torch.nn.functional.leaky_relu(s, attention.negative_slope)
    index = rows.unsqueeze(1).expand_as(logits)
    top = torch.full((indptr.numel() - 1, heads), float("-inf"), dtype=x.dtype, device=x.device)
    top = top.scatter_reduce(0, index, logits.detach(), "amax", include_self=True)
    p = torch.exp(logits - top[rows])
    alpha = p / torch.zeros_like(top).index_add(0, rows, p)[rows]
    if keep is not None:
        alpha = alpha * keep.to(alpha.dtype)
    messages = x[cols].view(len(cols), heads, x.shape[1] // heads) * alpha.unsqueeze(-1)
    out = x.new_zeros((indptr.numel() - 1, heads, x.shape[1] // heads))
    return out.index_add(0, rows, messages).flatten(1)


def aggregate_attention_torch(
    indptr: torch.Tensor, indices: torch.Tensor, x: torch.Tensor, attention: EdgeAttention
) -> torch.Tensor:
    """``y`` ``[N, H F]`` (see the module docstring); per-edge memory ``[E, H]``."""
    keep = attention.keep(indices.numel(), x.device) if torch.is_grad_enabled() else None
    return _Attention.apply(indptr, indices, x, attention.src, attention.dst, attention, keep)


def _weighted_sum(
    indptr: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor, x: torch.Tensor, rows: int
) -> torch.Tensor:
    """``y[:, h] = A_{w[:, h]} x[:, h]`` for each head: ``weights`` ``[E, H]``, ``x`` ``[M, H F]``
    -> ``[rows, H F]`` in ``x``'s dtype (one sparse product per head; fp16/bf16 in fp32)."""
    heads = weights.shape[1]
    width = x.shape[1] // heads
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    out = torch.empty((rows, x.shape[1]), dtype=dtype, device=x.device)
    for h in range(heads):
        adjacency = csr_tensor(indptr, indices, weights[:, h].to(dtype), (rows, x.shape[0]))
        head = x[:, h * width : (h + 1) * width].to(dtype).contiguous()
        out[:, h * width : (h + 1) * width] = torch.sparse.mm(adjacency, head)
    return out.to(x.dtype)


def _edge_dots(
    rows: torch.Tensor, cols: torch.Tensor, a: torch.Tensor, b: torch.Tensor, heads: int
) -> torch.Tensor:
    """``<a[rows_e, h], b[cols_e, h]>`` ``[E, H]`` in fp32 (fp64 for fp64), gathering
    :data:`EDGE_CHUNK` values of each side at a time."""
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    width = a.shape[1] // heads
    out = torch.empty((rows.numel(), heads), dtype=dtype, device=a.device)
    step = max(1, EDGE_CHUNK // max(a.shape[1], 1))
    for start in range(0, rows.numel(), step):
        end = min(start + step, rows.numel())
        left = a.index_select(0, rows[start:end]).to(dtype).view(-1, 1, width)
        right = b.index_select(0, cols[start:end]).to(dtype).view(-1, width, 1)
        out[start:end] = torch.bmm(left, right).view(end - start, heads)
    return out


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, indptr, indices, x, src, dst, attention, keep):
        alpha, s = attention_coefficients(indptr, indices, attention)
        if attention.record:
            attention.weights = alpha.detach()
        weights = alpha if keep is None else alpha * keep.to(alpha.dtype)
        out = _weighted_sum(indptr, indices, weights, x, indptr.numel() - 1)
        ctx.save_for_backward(indptr, indices, x, alpha, s, keep)
        ctx.slope, ctx.src_dtype, ctx.dst_dtype = attention.negative_slope, src.dtype, dst.dtype
        return out

    @staticmethod
    def backward(ctx, grad):
        indptr, indices, x, alpha, s, keep = ctx.saved_tensors
        heads, num_rows = alpha.shape[1], indptr.numel() - 1
        rows, cols = edge_rows(indptr), indices.long()
        weights = alpha if keep is None else alpha * keep.to(alpha.dtype)
        grad = grad.contiguous()
        grad_x = None
        if ctx.needs_input_grad[2]:
            t_indptr, t_indices, perm = cached_transpose(indptr, indices, x.shape[0])
            grad_x = _weighted_sum(t_indptr, t_indices, weights[perm], grad, x.shape[0])
        grad_src = grad_dst = None
        if ctx.needs_input_grad[3] or ctx.needs_input_grad[4]:
            d_alpha = _edge_dots(rows, cols, grad, x, heads)
            if keep is not None:
                d_alpha = d_alpha * keep.to(d_alpha.dtype)
            weighted = alpha * d_alpha
            row_sum = weighted.new_zeros((num_rows, heads)).index_add_(0, rows, weighted)
            d_logit = weighted - alpha * row_sum.index_select(0, rows)
            d_s = torch.where(s > 0, d_logit, d_logit * ctx.slope)
            if ctx.needs_input_grad[3]:
                grad_src = d_s.new_zeros((x.shape[0], heads)).index_add_(0, cols, d_s)
                grad_src = grad_src.to(ctx.src_dtype)
            if ctx.needs_input_grad[4]:
                grad_dst = d_s.new_zeros((num_rows, heads)).index_add_(0, rows, d_s)
                grad_dst = grad_dst.to(ctx.dst_dtype)
        return None, None, grad_x, grad_src, grad_dst, None, None
