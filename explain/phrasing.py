"""LLM phrasing of explanations: a grounded prompt that lists only the evidence and an opening
the model continues (:func:`opening`), generated in one batch, each answer validated
(:mod:`gnnrec.explain.validation`); a rejected or empty answer leaves the template sentence in
place, and is counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gnnrec.explain.explanation import Explanation
from gnnrec.explain.generator import Generator
from gnnrec.explain.validation import SentenceValidator

HISTORY_IN_PROMPT = 3  # the user's items named in a prompt (their largest positive terms)


@dataclass
class PhrasingReport:
    """``accepted`` sentences of ``total``; ``rejected``: how many for each reason."""

    total: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in self.rejected.most_common())
        kept = self.total - self.accepted
        text = f"LLM phrasing: {self.accepted} of {self.total} sentences passed validation"
        return text + (f"; {kept} kept the template ({reasons})" if kept else "")


def evidence_titles(e: Explanation) -> list[str]:
    """The titles a prompt names: the user's items with the largest positive terms."""
    return [t.title for t in e.history if t.contribution > 0 and t.kind == "item"][
        :HISTORY_IN_PROMPT
    ]


def prompt(e: Explanation, verb: str = "rated") -> str:
    """The grounded prompt of one explanation: the facts, and the instruction to use only them."""
    titles = evidence_titles(e)
    facts = [f'The recommended title is "{e.title}".']
    if titles:
        listed = ", ".join(f'"{t}"' for t in titles)
        shown = f" ({len(titles)} of their {e.history_size} items, those that count most)"
        facts.append(
            f"The user {verb} {listed}" + (shown if e.history_size > len(titles) else "") + "."
        )
    for t in e.history:
        people = e.also_rated.get(t.node, 0)
        if t.title in titles and people:
            who = "other person who" if people == 1 else "other people who"
            facts.append(f'{people} {who} {verb} "{t.title}" also {verb} "{e.title}".')
    return (
        "Explain a recommendation to a user in one short sentence, using only these facts and "
        "naming no other title.\n" + "\n".join(facts) + '\nStart with "Recommended because".'
    )


def numbers(e: Explanation) -> set[int]:
    """The numbers :func:`prompt` states (outside titles): how many items the user has, how
    many of them it names, and the co-rater counts."""
    titles = evidence_titles(e)
    return {e.history_size, len(titles), *(e.also_rated.get(t.node, 0) for t in e.history)}


def opening(e: Explanation, verb: str = "rated") -> str:
    """The start of the answer, written for the model: the recommended title and the evidence
    item that counts most (a 135M model left to start on its own names none of the evidence
    in most answers); the model writes the rest, which is validated."""
    titles = evidence_titles(e)
    because = f' because you {verb} "{titles[0]}"' if titles else " because"
    return f'"{e.title}" is recommended{because}'


def phrase(
    explanations: Sequence[Explanation],
    generator: Generator,
    titles: Iterable[str],
    verb: str = "rated",
) -> PhrasingReport:
    """Replaces each explanation's template sentence by the generated one where it passes
    validation against the catalogue ``titles`` (``generated`` set); returns the counts."""
    validator = SentenceValidator(titles)
    texts = generator.generate(
        [prompt(e, verb) for e in explanations], [opening(e, verb) for e in explanations]
    )
    report = PhrasingReport(total=len(explanations))
    for e, text in zip(explanations, texts):
        problem = validator.problem(text, [t.title for t in e.history], e.title, numbers(e))
        if problem is None:
            e.sentence, e.generated = " ".join(text.split()), True
            report.accepted += 1
        else:
            report.rejected[problem.split(":")[0]] += 1
    return report
