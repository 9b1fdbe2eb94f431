from __future__ import annotations

import pytest

from gnnrec.config import load_config
from gnnrec.data import load_ml_latest_small, split_interactions
from gnnrec.data.templates import render, template_fields
from gnnrec.data.user_text import node_table_texts, user_texts_from_interactions


def test_render_drops_sentences_whose_fields_are_empty():
    template = "{title}. Genres: {genres}. Tags: {tags}."
    assert render(template, {"title": "Heat", "genres": "Crime", "tags": ""}) == (
        "Heat. Genres: Crime."
    )
    assert template_fields(template) == ["title", "genres", "tags"]


@pytest.mark.parametrize("bad", ["{x.__class__}", "{x[0]}", "{x!r}", "{x:>10}", "{0}", "{"])
def test_templates_cannot_reach_into_objects(bad):
    with pytest.raises(ValueError, match="template"):
        template_fields(bad)
    with pytest.raises(ValueError, match="template"):
        load_config(None, [f"data.item_template={bad!r}"])


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match=r"uses \['year'\]"):
        render("{title} ({year})", {"title": "Heat"})


def test_templates_shape_item_and_user_text():
    graph = load_ml_latest_small()
    split = split_interactions(graph)
    items = node_table_texts(graph.items, "{title}, a {genres} film")
    assert items[0] == "Toy Story (1995), a Adventure, Animation, Children, Comedy, Fantasy film"
    users = user_texts_from_interactions(graph, split.train, 2, "Fan of {liked}.")
    assert users[0].startswith("Fan of ") and users[0].count(";") == 1
