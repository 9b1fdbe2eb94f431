"""User text built from training interactions only, so no test item can leak into features."""

from __future__ import annotations

import numpy as np

from gnnrec.data.textgraph import TextGraph


def user_texts_from_interactions(
    graph: TextGraph,
    train_index: np.ndarray,
    max_items: int = 20,
    title_field: str = "title",
    genre_field: str = "genres",
) -> list[str]:
    """One sentence per user listing the best-rated training items (most recent first on ties).

    ``"Liked: Toy Story (1995) (Animation, Comedy); ..."``; user profile fields, if any, come
    first. Only interactions in ``train_index`` are read.
    """
    inter = graph.interactions.subset(train_index)
    items = graph.items.text_fields
    titles = items.get(title_field, graph.items.ids)
    genres = items.get(genre_field)
    order = np.lexsort((-inter.timestamp, -inter.rating, inter.user))
    per_user: list[list[int]] = [[] for _ in range(graph.num_users)]
    for k in order:
        chosen = per_user[inter.user[k]]
        if len(chosen) < max_items:
            chosen.append(int(inter.item[k]))
    texts = []
    for user, chosen in enumerate(per_user):
        profile = graph.users.text(user)
        liked = "; ".join(
            f"{titles[i]} ({genres[i]})" if genres and genres[i] else titles[i] for i in chosen
        )
        texts.append(" ".join(p for p in (profile, f"Liked: {liked}." if liked else "") if p))
    return texts
