"""Inputs and gradients shared by the attention tests: per-node logit terms scaled to large or
very negative logits, and the gradients of ``<y, w>`` for fixed weights ``w``."""

from __future__ import annotations

from typing import NamedTuple

import torch
from hypothesis import strategies as st
from strategies import csr_graphs, features


def attention_inputs(graph, heads: int, width: int, scale: float, seed: int, dtype):
    """Leaf tensors ``x [M, H F]``, ``src [M, H]``, ``dst [N, H]`` already rounded to ``dtype``
    (an fp64 oracle then sees the same values)."""
    indptr, _, m = graph
    n = indptr.numel() - 1
    x = features(m, heads * width, seed, dtype).requires_grad_()
    src = (features(m, heads, seed + 1) * scale).to(dtype).requires_grad_()
    dst = (features(n, heads, seed + 2) * scale).to(dtype).requires_grad_()
    return x, src, dst


class AttentionCase(NamedTuple):
    graph: tuple
    heads: int
    width: int
    scale: float
    slope: float
    seed: int
    dtype: torch.dtype

    def inputs(self):
        """``(x, src, dst)``: :func:`attention_inputs` for this case."""
        return attention_inputs(
            self.graph, self.heads, self.width, self.scale, self.seed, self.dtype
        )


@st.composite
def attention_cases(draw, dtypes: list[torch.dtype], max_nodes: int, max_edges: int):
    """Awkward graphs (:func:`strategies.csr_graphs`), 1-3 heads of 1-5 features, logits of
    ordinary, large and very negative size, LeakyReLU slopes 0.2 and 0."""
    return AttentionCase(
        graph=draw(csr_graphs(max_rows=max_nodes, max_cols=max_nodes, max_edges=max_edges)),
        heads=draw(st.integers(1, 3)),
        width=draw(st.integers(1, 5)),
        scale=draw(st.sampled_from([1.0, 30.0, -80.0])),
        slope=draw(st.sampled_from([0.2, 0.0])),
        seed=draw(st.integers(0, 2**16)),
        dtype=draw(st.sampled_from(dtypes)),
    )


def forward_and_grads(fn, x, src, dst, seed: int):
    """``fn(x, src, dst)`` and the gradients of ``<y, w>`` for ``x``, ``src`` and ``dst``
    (zeros where unused), ``w`` fixed by ``seed`` and rounded to ``y``'s dtype."""
    out = fn(x, src, dst)
    weights = features(out.shape[0], out.shape[1], seed + 3, out.dtype)
    grads = torch.autograd.grad((out * weights).sum(), (x, src, dst), allow_unused=True)
    return out, [torch.zeros_like(t) if g is None else g for g, t in zip(grads, (x, src, dst))]
