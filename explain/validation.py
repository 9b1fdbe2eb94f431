"""What a generated sentence may say: only the evidence. A sentence is rejected when it is
empty or over-long, names any catalogue item that is not in the evidence (its full title, or
the title without its trailing year when that still has two words or more, anywhere but inside
a title it may name: "Dead Man (1995)" is not named by "Dead Man Walking (1995)"), names one
title more than twice, states a number outside titles that the evidence does not (where the
evidence's numbers are given: "the best film of 1982"), names a user, or does not name the
recommended item at all. Rejected sentences are replaced by the
template."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

YEAR = re.compile(r"\s*\(\d{4}\)\s*$")
USER = re.compile(r"\busers?\s+#?[\w-]*\d", re.IGNORECASE)  # "user 17", not "the user likes"
NUMBER = re.compile(r"\d+")
MAX_CHARS = 400
REPEATS = 2  # times a sentence may name one title


def title_forms(title: str) -> list[str]:
    """The lower-case forms of ``title`` a sentence may name it by."""
    full = " ".join(title.lower().split())
    forms = [full]
    bare = YEAR.sub("", full)
    if bare != full and len(bare.split()) >= 2:
        forms.append(bare)
    return forms


class SentenceValidator:
    """Checks sentences against a catalogue of ``titles`` (see the module docstring)."""

    def __init__(self, titles: Iterable[str], max_chars: int = MAX_CHARS):
        self.max_chars = max_chars
        self._forms = [(form, title) for title in set(titles) for form in title_forms(title)]

    def problem(
        self,
        sentence: str,
        allowed: Sequence[str],
        item: str | None,
        numbers: Collection[int] | None = None,
    ) -> str | None:
        """None for a sentence that may be shown, else why not. ``allowed``: the titles of the
        evidence; ``item``: the recommended title, which the sentence must name beside at least
        one title of the evidence (None: no such rule, as for a profile); ``numbers``: the
        numbers the evidence states, the only ones the sentence may state outside titles (None:
        no such rule)."""
        text = " ".join(sentence.lower().split())
        if not text:
            return "empty"
        if len(text) > self.max_chars:
            return "too long"
        if USER.search(text):
            return "names a user"
        allowed_titles = set(allowed) | ({item} if item is not None else set())
        found = {(t, f): _spans(text, f) for t in allowed_titles for f in title_forms(t)}
        own = [span for spans in found.values() for span in spans]
        named = {
            title
            for form, title in self._forms
            if form in text and any(not _inside(span, own) for span in _spans(text, form))
        }  # a title inside an allowed one ("Dead Man" in "Dead Man Walking") is not named
        invented = sorted(named - allowed_titles)
        if invented:
            return f"names an item not in the evidence: {invented[0]!r}"
        if any(len(spans) > REPEATS for spans in found.values()):
            return "repeats a title"
        if numbers is not None:
            outside = "".join(c for k, c in enumerate(text) if not _inside((k, k + 1), own))
            stated = {int(n) for n in NUMBER.findall(outside)}
            if stated - set(numbers):
                return f"states a number not in the evidence: {min(stated - set(numbers))}"
        if item is not None and not any(found[(item, f)] for f in title_forms(item)):
            return "does not name the recommended item"
        if (
            item is not None
            and allowed
            and not any(found[(t, f)] for t in allowed for f in title_forms(t))
        ):
            return "names none of the evidence"  # says what, not why
        return None


def _spans(text: str, form: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each whole occurrence of ``form`` in ``text`` (not inside a
    longer word or number: "number 1" is not in "number 13")."""
    spans = []
    start = text.find(form)
    while start >= 0:
        end = start + len(form)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() and form[0].isalnum()) and not (
            after.isalnum() and form[-1].isalnum()
        ):
            spans.append((start, end))
        start = text.find(form, start + 1)
    return spans


def _inside(span: tuple[int, int], others: list[tuple[int, int]]) -> bool:
    """Whether ``span`` lies within one of ``others``."""
    return any(a <= span[0] and span[1] <= b for a, b in others)
