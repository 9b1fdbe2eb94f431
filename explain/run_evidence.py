"""Explanations of a loaded run's recommendations (:meth:`RunHandle.explain`): ids checked,
the evidence computed for a batch of pairs at once, named and phrased.

Trained users are explained over their row of the training graph; users folded in since the
run was loaded (or known users who recorded interactions) over the items they have now, their
own term holding their fitted row. MF and NCF score without the graph: their "evidence" is
the user's items ranked by cosine similarity to the recommended one, labelled approximate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from gnnrec.common.arguments import id_list, positive_int
from gnnrec.data.hetero import RATED_BY
from gnnrec.explain.evidence import EXACT, PairTerms, method_of, pair_terms
from gnnrec.explain.explanation import Explanation, Term, template_sentence

if TYPE_CHECKING:
    from gnnrec.serve.handle import RunHandle

SIMILARITY = (
    "similarity of the user's items to this one (approximate: the model scores without the graph)"
)


def explain_pairs(
    handle: RunHandle, pairs: Sequence[tuple[str, str]], k: int = 5, paths: int = 3
) -> list[Explanation]:
    """One :class:`Explanation` per ``(user, item)`` pair: ``k`` history items, the paths
    through the ``paths`` best of them. Unknown ids raise ``UnknownIds``; an item the user
    already has raises ``ValueError`` (it is never recommended to them)."""
    from gnnrec.serve.handle import UnknownIds

    k = positive_int(k, "k")
    if not isinstance(paths, int) or isinstance(paths, bool) or paths < 0:
        raise ValueError(f"paths must be an integer >= 0, got {paths!r}")
    users = id_list([u for u, _ in pairs], "users")
    items = id_list([i for _, i in pairs], "items")
    unknown = list(dict.fromkeys(u for u in users if not handle.knows_user(u)))
    if unknown:
        raise UnknownIds("user", unknown)
    item_rows = handle.item_rows(items)
    U = handle.num_users
    with handle._lock:
        z_users = torch.stack([handle._user_z(u) for u in users]) if users else handle.z[:0]
        seen = [handle._seen_rows(u) for u in users]
        for user, item, row, own in zip(users, items, item_rows, seen):
            if row in own:
                raise ValueError(
                    f"item {item!r} is among user {user!r}'s items: it is never recommended "
                    "to them, so there is no recommendation to explain"
                )
        z_items = handle.z[torch.as_tensor(U + item_rows, dtype=torch.long)]
        fresh = [u in handle._fresh for u in users]
        if method_of(handle.model) is None:
            terms = _similarity_terms(handle, z_users, z_items, item_rows, seen)
        else:
            terms = _graph_terms(handle, users, fresh, seen, z_users, z_items, paths)
    text = _text_shares(handle, users, fresh, item_rows)
    out = []
    for b, (user, item) in enumerate(zip(users, items)):
        out.append(_named(handle, user, item, item_rows[b], terms[b], k, text[b]))
    return out


def _graph_terms(handle, users, fresh, seen, z_users, z_items, paths) -> list[PairTerms]:
    model, U = handle.model, handle.num_users
    handle.prepare_fold_in()
    state, graph = handle._state, handle._data.graph.csr
    state.require_plain(
        "an explanation from the graph", "retrain without them", weighted_ok=True, typed_ok=True
    )
    indptr, indices = graph.indptr.numpy(), graph.indices.numpy()
    if any(fresh) and (model.ATTENDS or method_of(model) != EXACT):
        raise ValueError(
            "users folded in since the run was loaded are explained for models whose layers "
            "are weighted sums (GCN, LightGCN); this model's layers read the user's own "
            "layer inputs, which fold-in does not keep"
        )
    rows = [handle._user_row.get(u, -1) for u in users]
    neighbors = [
        seen[b] + U if fresh[b] else indices[indptr[row] : indptr[row + 1]]
        for b, row in enumerate(rows)
    ]
    # per edge: a trained user's from the graph, a folded-in user's as fold-in weighed and
    # related them (their items: rated_by)
    weights = relations = None
    if graph.values is not None:
        weights = [
            handle._edge_weights(row, seen[b])
            if fresh[b]
            else graph.values[indptr[row] : indptr[row + 1]].numpy()
            for b, row in enumerate(rows)
        ]
    if graph.relation is not None:
        relations = [
            np.full(len(seen[b]), RATED_BY)
            if fresh[b]
            else graph.relation[indptr[row] : indptr[row + 1]].numpy()
            for b, row in enumerate(rows)
        ]
    targets = None
    if not any(fresh):
        rows = torch.as_tensor([handle._user_row[u] for u in users], dtype=torch.long)
        targets = [s[rows.to(s.device)].to(z_users.device) for s in state.states]
    return pair_terms(
        model, state, graph, z_users, z_items, neighbors, targets, paths, weights, relations
    )


def _similarity_terms(handle, z_users, z_items, item_rows, seen) -> list[PairTerms]:
    """MF / NCF: the score, and each of the user's items' cosine similarity to the item."""
    U = handle.num_users
    scores = handle.model.pair_scores(z_users, z_items)
    unit = handle._unit
    out = []
    for b, own in enumerate(seen):
        nodes = np.asarray(own, dtype=np.int64) + U
        similarity = unit[torch.as_tensor(nodes)] @ unit[U + int(item_rows[b])]
        similarity = similarity.cpu().numpy()
        out.append(PairTerms(float(scores[b]), float(scores[b]), nodes, similarity, []))
    return out


def _text_shares(handle, users, fresh, item_rows) -> list[dict[str, float] | None]:
    """For a text model whose embeddings are linear in layer 0 (not attention): the score as
    ``z_u . z_i`` with each side split into its text part (IDs masked) and ID part."""
    model = handle.model
    if not handle.config.model.text_features or method_of(model) != EXACT:
        return [None] * len(users)
    z_text = handle.text_embeddings()
    out = []
    for user, is_fresh, row in zip(users, fresh, item_rows):
        if is_fresh:
            out.append(None)
            continue
        u, i = handle._user_row[user], handle.num_users + int(row)
        tu, ti = z_text[u], z_text[i]
        iu, ii = handle.z[u] - tu, handle.z[i] - ti
        out.append(
            {
                "text": float(tu @ ti),
                "ids": float(iu @ ii),
                "user_text_item_ids": float(tu @ ii),
                "user_ids_item_text": float(iu @ ti),
            }
        )
    return out


def _named(
    handle: RunHandle,
    user: str,
    item: str,
    item_row: int,
    terms: PairTerms,
    k: int,
    text: dict[str, float] | None,
) -> Explanation:
    U = handle.num_users
    method = method_of(handle.model) or SIMILARITY
    order = np.argsort(-terms.terms, kind="stable")
    shown = order[:k]

    def name(node: int) -> tuple[str, str, str]:
        if node >= U + handle.num_items:  # an entity (a genre, a tag, ...)
            kind, node_id = handle.graph.entity(node - U - handle.num_items)
            return node_id, f"{kind} {node_id}", kind
        if node >= U:
            item_id = handle.graph.items.ids[node - U]
            return item_id, handle.title(item_id), "item"
        user_id = handle.graph.users.ids[node]
        return user_id, f"user {user_id}", "user"

    history = []
    for e in shown:
        node, title, kind = name(int(terms.neighbors[e]))
        history.append(Term(node, title, float(terms.terms[e]), kind=kind))
    rest = float(terms.terms[order[k:]].sum())
    paths = []
    for j, w, value in terms.paths[: 2 * k]:
        node, title, kind = name(j)
        via = None if w < 0 else name(w)[0]
        paths.append(Term(node, title, value, via, kind))
    explanation = Explanation(
        user=user,
        item=item,
        title=handle.title(item),
        score=terms.score,
        method=method,
        own=terms.own,
        history=history,
        history_size=len(terms.neighbors),
        rest=rest,
        paths=paths,
        also_rated=_also_rated(handle, history, item_row),
        text=text,
    )
    explanation.sentence = template_sentence(explanation)
    return explanation


def _also_rated(handle: RunHandle, history: list[Term], item_row: int) -> dict[str, int]:
    """For each listed history item: how many users have both it and the recommended item in
    the training data (the user themself not counted)."""
    indptr, indices = handle._data.graph.csr.indptr.numpy(), handle._data.graph.csr.indices.numpy()
    U = handle.num_users
    target = indices[indptr[U + item_row] : indptr[U + item_row + 1]]
    out = {}
    for term in history:
        if term.kind != "item":
            continue
        row = handle._item_row[term.node]
        raters = indices[indptr[U + row] : indptr[U + row + 1]]
        out[term.node] = int(np.intersect1d(raters, target).size)
    return out
