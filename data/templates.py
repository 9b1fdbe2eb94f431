"""Text templates: how a node's text is assembled from its fields.

A template is a plain format string over field names, e.g.
``"{title}. Genres: {genres}. Tags: {tags}"``. Only bare names are allowed (no attribute or
index access, no conversions), so a template from a config file cannot reach into Python
objects. A sentence whose fields are all empty is dropped, so nodes with missing fields get no
dangling "Tags: ." text. The special field ``{liked}`` of user templates is the list of
best-rated training items (see :mod:`gnnrec.data.user_text`).

Examples::

    item_template = "{title}. Genres: {genres}. Tags: {tags}."
    user_template = "{profile}. Liked: {liked}."
    item_template = "{name} by {brand}: {description}"
"""

from __future__ import annotations

import re
import string

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


def template_fields(template: str) -> list[str]:
    """The field names a template uses; raises ``ValueError`` for anything but bare names."""
    names = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"template {template!r}: {err}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(
                f"template {template!r}: field {{{name}}} must be a bare name like {{title}}"
            )
        names.append(name)
    return names


def render(template: str, fields: dict[str, str]) -> str:
    """The template filled with ``fields``; sentences whose fields are all empty are dropped."""
    used = template_fields(template)
    missing = sorted(set(used) - set(fields))
    if missing:
        raise ValueError(f"template {template!r} uses {missing}, not among {sorted(fields)}")
    kept = []
    for sentence in _SENTENCE_SPLIT.split(template):
        names = template_fields(sentence)
        if names and not any(fields[n].strip() for n in names):
            continue
        kept.append(sentence.format_map({n: fields[n].strip() for n in names}))
    return " ".join(kept).strip()
