"""Evidence for a recommendation: the score ``s(u, i) = z_u . z_i`` taken apart into what the
user's own computation read, as the model computed it.

A propagating model's final embedding of ``u`` combines its layers (``a_l``: ``1 / (L + 1)`` for
the layer mean, ``[l = L]`` for the last layer), and each layer is a sum over ``u``'s edges:

.. math::
    z_u = a_0 h^0_u + \\sum_{l=1}^{L} a_l \\sum_{j \\in N(u)} m^l_{uj}, \\qquad
    m^l_{uj} = c^l_{uj} \\odot \\Theta_l h^{l-1}_j

with ``c_uj = d_u^{-1/2} d_j^{-1/2}`` (GCN and LightGCN, ``sum``), ``1 / d_u`` (``mean``), each
times the edge's weight ``w_uj`` and with weighted degrees over a weighted graph (typed
relations: the degrees within the edge's relation ``r``, and ``Theta_{l,r}`` its weight), or the
attention weights ``alpha^l_uj`` per head (GAT: the weights the forward pass used, returned by
the kernel). So ``s(u, i) = a_0 h^0_u . z_i + sum_j t_j``, one term ``t_j = (sum_l a_l m^l_uj)
. z_i`` per neighbour ``j`` (the items ``u`` has): exact for GCN and LightGCN, exact given the
attention for GAT (whose weights themselves depend on the features). Each ``t_j`` splits again
over the paths ``u -> j -> w`` (``h^{l-1}_j = sum_w m^{l-1}_{jw}`` for ``l >= 2``):

.. math::
    t_j = a_1 m^1_{uj} . z_i + \\sum_{w \\in N(j)} \\sum_{l \\ge 2} a_l
          \\big(c^l_{uj} \\odot \\Theta_l m^{l-1}_{jw}\\big) . z_i

Nothing is enumerated beyond ``u``'s edges and, for the ``paths`` best neighbours, theirs: a
pair costs ``O((d_u + sum_j d_j) L H)``, from each layer's inputs over the trained graph (what
fold-in reads, :class:`~gnnrec.serve.fold_in.GraphState`). The user's own term is ``s`` less the
neighbours' (``a_0 h^0_u . z_i`` for a trained user; a folded-in user's fitted row likewise).
A layer that is not such a sum (``max`` aggregation) gets gradient x input instead: ``t_j =
w_j ds/dw_j`` at ``w = 1``, ``w_j`` scaling what ``j`` sends ``u`` in every layer (approximate:
the terms need not add up to the score).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gnnrec.data.graph_store import CSR
from gnnrec.kernels.csr import edge_rows, inverse_sqrt_degree
from gnnrec.models.graph_view import GraphView
from gnnrec.models.recommender import Recommender
from gnnrec.serve.fold_in import GraphState, neighbor_rows

EXACT = "exact"
GIVEN_ATTENTION = "exact given the attention weights"
GRADIENT = "gradient x input (approximate)"


@dataclass
class PairTerms:
    """One pair's numbers (node ids): the model's ``score``, the user's ``own`` term, the
    user's ``neighbors`` ``[d]`` with their ``terms`` ``[d]``, and ``paths``: ``(j, w, term)``
    for the paths ``u -> j -> w`` through the best neighbours, best first."""

    score: float
    own: float
    neighbors: np.ndarray
    terms: np.ndarray
    paths: list[tuple[int, int, float]]


def method_of(model: Recommender) -> str | None:
    """How :func:`pair_terms` takes ``model``'s scores apart (None: it cannot, the model reads
    no graph when it scores)."""
    if not model.propagates or not model.scores_are_dot_products:
        return None
    if model.ATTENDS:
        return GIVEN_ATTENTION
    return EXACT if all(_is_weighted_sum(conv) for conv in model.convs) else GRADIENT


def layer_coefficients(model: Recommender) -> list[float]:
    """``[a_0, ..., a_L]``: how each layer enters the final embedding."""
    layers = len(model.convs)
    if model.config.layer_combination == "last":
        return [0.0] * layers + [1.0]
    return [1.0 / (layers + 1)] * (layers + 1)


def pair_terms(
    model: Recommender,
    state: GraphState,
    graph: CSR,
    z_users: torch.Tensor,
    z_items: torch.Tensor,
    neighbors: Sequence[np.ndarray],
    targets: list[torch.Tensor] | None = None,
    paths: int = 3,
    neighbor_weights: Sequence[np.ndarray] | None = None,
    neighbor_relations: Sequence[np.ndarray] | None = None,
) -> list[PairTerms]:
    """The evidence of ``B`` pairs: users with final embeddings ``z_users`` ``[B, H]`` and
    neighbour node ids ``neighbors[b]`` (a trained user's row of ``graph``; a folded-in user's
    items), items ``z_items`` ``[B, H]``. ``targets``: each layer's input at the users' own
    rows (``[h^0_u, ..., h^{L-1}_u]``, each ``[B, H]``; attention reads them, so GAT needs
    them); ``paths``: the neighbours (best first) whose paths ``u -> j -> w`` are listed.
    Over a weighted graph (``graph.values``), ``neighbor_weights[b]``: the weights of the
    user's edges to ``neighbors[b]`` (the degrees are weighted as the model's are); with typed
    relations, ``neighbor_relations[b]``: their relation ids (each relation normalised on its
    own, through its own weight)."""
    method = method_of(model)
    if method is None:
        raise ValueError(f"{model.label} scores without the graph: no evidence to take apart")
    if method == GIVEN_ATTENTION and targets is None:
        raise ValueError("attention reads the user's own layer inputs: pass targets")
    device, dtype = z_users.device, z_users.dtype
    scores = model.pair_scores(z_users, z_items)
    csr, columns = neighbor_rows(neighbors, 0, neighbor_weights, neighbor_relations)
    csr = csr.to(device)
    local = [s[columns.to(s.device)].to(device, dtype) for s in state.states]
    view = _held_view(
        state, csr, columns, inverse_sqrt_degree(csr.weighted_degree(), dtype), device, dtype
    )
    relation = None if csr.relation is None else csr.relation.long()
    rows = edge_rows(csr.indptr)
    if method == GRADIENT:
        terms = _gradient_terms(model, local, view, targets, z_users, z_items, rows)
        weights = None
    else:
        weights = [
            conv.edge_weights(inputs, view, None if targets is None else targets[layer])
            for layer, (conv, inputs) in enumerate(zip(model.convs, local))
        ]
        a = layer_coefficients(model)
        total = torch.zeros(csr.indices.numel(), z_users.shape[1], device=device, dtype=dtype)
        for layer, (conv, inputs) in enumerate(zip(model.convs, local)):
            values = _values(conv, inputs.index_select(0, csr.indices.long()), relation)
            total += a[layer + 1] * _by_heads(weights[layer], values)
        terms = (total * z_items.index_select(0, rows)).sum(1)
    own = scores - torch.zeros_like(scores).index_add_(0, rows, terms)
    out = []
    for b in range(len(neighbors)):
        start, end = int(csr.indptr[b]), int(csr.indptr[b + 1])
        node_ids = columns[csr.indices[start:end].cpu()].numpy()
        out.append(
            PairTerms(float(scores[b]), float(own[b]), node_ids, terms[start:end].cpu().numpy(), [])
        )
    if paths and weights is not None and len(model.convs) >= 2:
        _add_paths(model, state, graph, out, weights, csr, z_items, paths, device, dtype)
    return out


def _held_view(
    state: GraphState,
    csr: CSR,
    columns: torch.Tensor,
    row_scale: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype,
) -> GraphView:
    """The view of some rows ``csr`` placed in the trained graph: their own row scales, the
    columns' (``columns``, node ids) as trained, per relation too for typed relations."""
    at = columns.to(state.col_scale.device)
    view = GraphView(csr, row_scale, state.col_scale[at].to(device, dtype))
    if csr.relation is not None:
        view = view.held_columns(state.relation_col_scale[:, at].to(device, dtype))
    return view


def _values(conv: torch.nn.Module, h: torch.Tensor, relation: torch.Tensor | None):
    """``Theta h`` of each row of ``h`` (through the weight of its relation, typed layers)."""
    return conv.values(h) if relation is None else conv.values(h, relation)


def _is_weighted_sum(conv: torch.nn.Module) -> bool:
    """Whether a GCN layer is ``sum_e c_e Theta h_j`` (see ``GCNLayer.edge_weights``)."""
    return getattr(conv, "bias", None) is None and getattr(conv, "aggregation", "sum") != "max"


def _by_heads(weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` ``[E, F]`` with head ``k``'s columns scaled by ``weights[:, k]``."""
    heads, width = weights.shape[1], values.shape[1] // weights.shape[1]
    return (values.view(len(values), heads, width) * weights.unsqueeze(-1)).view(values.shape)


def _gradient_terms(
    model: Recommender,
    local: list[torch.Tensor],
    view: GraphView,
    targets: list[torch.Tensor] | None,
    z_users: torch.Tensor,
    z_items: torch.Tensor,
    rows: torch.Tensor,
) -> torch.Tensor:
    """``w_e ds/dw_e`` at ``w = 1`` ``[E]``: ``w_e`` scales what edge ``e``'s source sends its
    row in every layer, through the model's own fold-in over one column per edge."""
    if targets is None:
        raise ValueError("gradient x input recomputes the user's layers: pass targets")
    cols = view.csr.indices.long()
    csr = CSR(view.csr.indptr, torch.arange(len(cols), device=cols.device), len(cols))
    scale = torch.ones(len(cols), device=cols.device, dtype=z_users.dtype, requires_grad=True)
    with torch.enable_grad():
        states = [s.index_select(0, cols) * scale.unsqueeze(1) for s in local]
        z = model.fold_in(targets[0], csr, states, view.col_scale.index_select(0, cols))
        model.pair_scores(z, z_items).sum().backward()
    return scale.grad.detach()


def _add_paths(
    model: Recommender,
    state: GraphState,
    graph: CSR,
    out: list[PairTerms],
    weights: list[torch.Tensor],
    csr: CSR,
    z_items: torch.Tensor,
    paths: int,
    device: torch.device,
    dtype: torch.dtype,
) -> None:
    """Fills each pair's ``paths``: for its ``paths`` best neighbours ``j``, the path ``u -> j``
    (``w = -1``) and every ``u -> j -> w`` term (see the module docstring), best first."""
    a = layer_coefficients(model)
    chosen = []  # (pair, edge of u -> j, node j)
    for b, pair in enumerate(out):
        best = np.argsort(-pair.terms, kind="stable")[:paths]
        start = int(csr.indptr[b])
        chosen += [(b, start + int(e), int(pair.neighbors[e])) for e in best]
    if not chosen:
        return
    nodes = [j for _, _, j in chosen]
    indptr, indices = graph.indptr.cpu(), graph.indices.cpu()
    spans = [(int(indptr[j]), int(indptr[j + 1])) for j in nodes]
    lists = [indices[a:b].numpy() for a, b in spans]

    def of_spans(t: torch.Tensor | None) -> list[np.ndarray] | None:
        return None if t is None else [t[a:b].cpu().numpy() for a, b in spans]

    inner, columns = neighbor_rows(lists, 0, of_spans(graph.values), of_spans(graph.relation))
    inner = inner.to(device)
    scale = inverse_sqrt_degree(graph.weighted_degree(), dtype)[torch.as_tensor(nodes)].to(device)
    view = _held_view(state, inner, columns, scale, device, dtype)
    inner_relation = None if inner.relation is None else inner.relation.long()
    outer_relation = None if csr.relation is None else csr.relation.long()
    inner_rows = edge_rows(inner.indptr)
    outer_edge = torch.as_tensor([e for _, e, _ in chosen], device=device)
    pair_of = torch.as_tensor([b for b, _, _ in chosen], device=device)
    total = torch.zeros(inner.indices.numel(), z_items.shape[1], device=device, dtype=dtype)
    for layer in range(2, len(model.convs) + 1):  # m^{l-1}_{jw}, then layer l's c_uj Theta_l
        below, conv = model.convs[layer - 2], model.convs[layer - 1]
        inputs = state.states[layer - 2][columns.to(state.states[0].device)].to(device, dtype)
        targets = state.states[layer - 2][torch.as_tensor(nodes)].to(device, dtype)
        w_inner = below.edge_weights(inputs, view, targets)
        sources = inputs.index_select(0, inner.indices.long())
        message = _by_heads(w_inner, _values(below, sources, inner_relation))
        w_outer = weights[layer - 1].index_select(0, outer_edge).index_select(0, inner_rows)
        through = None  # each path through its outer edge's relation
        if outer_relation is not None:
            through = outer_relation.index_select(0, outer_edge).index_select(0, inner_rows)
        total += a[layer] * _by_heads(w_outer, _values(conv, message, through))
    item = z_items.index_select(0, pair_of).index_select(0, inner_rows)
    terms = (total * item).sum(1).cpu().numpy()
    first = None if outer_relation is None else outer_relation.index_select(0, outer_edge)
    direct = _by_heads(  # a_1 m^1_uj . z_i: the path u -> j itself
        weights[0].index_select(0, outer_edge),
        _values(model.convs[0], state.states[0][torch.as_tensor(nodes)].to(device, dtype), first),
    )
    direct = (a[1] * direct * z_items.index_select(0, pair_of)).sum(1).cpu().numpy()
    for k, (b, _, j) in enumerate(chosen):
        start, end = int(inner.indptr[k]), int(inner.indptr[k + 1])
        via = columns[inner.indices[start:end].cpu()].numpy()
        out[b].paths.append((j, -1, float(direct[k])))
        out[b].paths += [(j, int(w), float(t)) for w, t in zip(via, terms[start:end])]
    for pair in out:
        pair.paths.sort(key=lambda p: -p[2])
