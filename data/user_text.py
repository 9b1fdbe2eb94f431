"""Node text: items from their fields, users from their fields and their *training*
interactions only, so no test item can leak into features. Both through optional templates
(:mod:`gnnrec.data.templates`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gnnrec.data.splits import Split
from gnnrec.data.templates import render
from gnnrec.data.textgraph import NodeTable, TextGraph, sentences

if TYPE_CHECKING:
    from gnnrec.data.config import DataConfig


def liked_items(
    graph: TextGraph,
    train_index: np.ndarray,
    max_items: int = 20,
    title_field: str = "title",
    genre_field: str = "genres",
) -> list[str]:
    """Per user, the best-rated training items (most recent first on ties), as
    ``"Toy Story (1995) (Animation, Comedy); ..."``. Only ``train_index`` is read."""
    return [
        liked_phrase(graph, chosen, title_field, genre_field)
        for chosen in liked_item_rows(graph, train_index, max_items)
    ]


def liked_item_rows(
    graph: TextGraph, train_index: np.ndarray, max_items: int = 20
) -> list[list[int]]:
    """Per user, the item rows of :func:`liked_items`: at most ``max_items`` training items,
    best-rated first (most recent first on ties)."""
    inter = graph.interactions.subset(train_index)
    order = np.lexsort((-inter.timestamp, -inter.rating, inter.user))
    per_user: list[list[int]] = [[] for _ in range(graph.num_users)]
    for k in order:
        chosen = per_user[inter.user[k]]
        if len(chosen) < max_items:
            chosen.append(int(inter.item[k]))
    return per_user


def liked_phrase(
    graph: TextGraph, items: Sequence[int], title_field: str = "title", genre_field: str = "genres"
) -> str:
    """``"Toy Story (1995) (Animation, Comedy); ..."`` for item rows ``items``, in order."""
    titles = graph.items.text_fields.get(title_field, graph.items.ids)
    genres = graph.items.text_fields.get(genre_field)
    return "; ".join(
        f"{titles[i]} ({genres[i]})" if genres and genres[i] else titles[i] for i in items
    )


def user_text_for_items(
    graph: TextGraph, items: Sequence[int], cfg: DataConfig, user: int | None = None
) -> str:
    """The text a user with the liked item rows ``items`` (best first) gets, as
    :func:`node_texts` writes it: the profile fields of the known user row ``user`` (none for a
    new user) and at most ``cfg.user_text_items`` of ``items``."""
    fields = {name: "" if user is None else v[user] for name, v in graph.users.text_fields.items()}
    liked = liked_phrase(graph, list(items)[: cfg.user_text_items])
    if cfg.user_template:
        return render(cfg.user_template, {**fields, "liked": liked})
    return " ".join(
        p
        for p in (
            sentences(list(fields), list(fields.values())),
            f"Liked: {liked}." if liked else "",
        )
        if p
    )


def node_table_texts(
    table: NodeTable, template: str = "", extra: dict[str, list[str]] | None = None
) -> list[str]:
    """Each node's text: ``template`` over its fields (plus ``extra`` fields), or by default
    every non-empty field as a ``"Field: value."`` sentence."""
    extra = extra or {}
    if not template:
        texts = table.texts()
        if "liked" in extra:
            texts = [
                " ".join(p for p in (t, f"Liked: {liked}." if liked else "") if p)
                for t, liked in zip(texts, extra["liked"])
            ]
        return texts
    fields = {**table.text_fields, **extra}
    return [render(template, {k: v[i] for k, v in fields.items()}) for i in range(len(table))]


def user_texts_from_interactions(
    graph: TextGraph, train_index: np.ndarray, max_items: int = 20, template: str = ""
) -> list[str]:
    """User text from profile fields and training interactions; ``{liked}`` in a template is
    the :func:`liked_items` list. Default: ``"Profile: ... Liked: A (genres); B ..."``."""
    liked = liked_items(graph, train_index, max_items)
    return node_table_texts(graph.users, template, {"liked": liked})


def node_texts(graph: TextGraph, split: Split, cfg: DataConfig) -> list[str]:
    """``U + I + K`` texts: users' from their training interactions (and profile fields), or
    the generated profiles of ``cfg.profiles_path`` (``user_text = "profile"``); items' fields;
    each through its template if one is configured; then each entity type's nodes (their
    fields, or ``"Type: id."`` for a type without text)."""
    if cfg.user_text == "profile":
        from gnnrec.data.profiles_file import read_profiles

        users = read_profiles(cfg.profiles_path, graph.users.ids)
    else:
        users = user_texts_from_interactions(
            graph, split.train, cfg.user_text_items, cfg.user_template
        )
    return users + node_table_texts(graph.items, cfg.item_template) + entity_texts(graph)


def entity_texts(graph: TextGraph) -> list[str]:
    """The ``K`` entity nodes' texts, every entity type in order: their fields as sentences,
    or ``"Type: id."`` (a tag or genre named by its id) for a type without text fields."""
    texts: list[str] = []
    for node_type, table in graph.entities.items():
        if table.text_fields:
            texts += table.texts()
        else:
            name = node_type.replace("_", " ").capitalize()
            texts += [f"{name}: {node}." for node in table.ids]
    return texts
