"""An explanation of one recommendation: the evidence (:mod:`gnnrec.explain.evidence`) named by
ids and titles, and a sentence that says only what the evidence holds.

The template sentence is deterministic: the user's two items with the largest positive terms,
and, for the first, how many other users who have it also have the recommended item (the
paths ``u -> j -> w -> i`` that end at the item itself)::

    Recommended because you rated Heat (1995) and Casino (1995), and 14 people who rated
    Heat (1995) also rated Goodfellas (1990).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Term:
    """A part of the score: ``node`` (an item id, or a user id for a user-user edge: ``kind``),
    its ``title`` and ``contribution``; ``via``: the node ``w`` of a path ``u -> node -> w``
    (None: the edge ``u -> node`` itself)."""

    node: str
    title: str
    contribution: float
    via: str | None = None
    kind: str = "item"


@dataclass
class Explanation:
    """Why ``item`` is recommended to ``user``: the model's ``score``, how it was taken apart
    (``method``), the user's ``own`` term (their layer 0: ID row and text), the ``history``
    items with the largest terms (of ``history_size``; ``rest`` the sum of the others' terms),
    the best ``paths`` through them, ``also_rated`` (history item id -> how many other users
    have it and ``item``), the ``text`` share of the score (text and ID parts of both
    embeddings, where the model is linear in them) and the ``sentence``."""

    user: str
    item: str
    title: str
    score: float
    method: str
    own: float
    history: list[Term]
    history_size: int
    rest: float
    paths: list[Term] = field(default_factory=list)
    also_rated: dict[str, int] = field(default_factory=dict)
    text: dict[str, float] | None = None
    sentence: str = ""
    generated: bool = False  # the sentence came from the generator (and passed validation)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def template_sentence(explanation: Explanation, verb: str = "rated") -> str:
    """The deterministic sentence (see the module docstring); ``verb`` for what a user did with
    an item ("rated", "bought", ...)."""
    liked = [t for t in explanation.history if t.contribution > 0][:2]
    if not liked:
        return (
            f"Recommended from your overall taste: none of your {explanation.history_size} "
            f"items adds to {explanation.title}'s score on its own."
        )
    names = " and ".join(t.title for t in liked)
    sentence = f"Recommended because you {verb} {names}"
    people = explanation.also_rated.get(liked[0].node, 0)
    if people:
        who = "person who" if people == 1 else "people who"
        sentence += f", and {people} {who} {verb} {liked[0].title} also {verb} {explanation.title}"
    return sentence + "."
