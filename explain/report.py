"""An explanation as a few lines of text for a terminal (``gnnrec explain``)."""

from __future__ import annotations

from gnnrec.explain.explanation import Explanation


def explanation_text(e: Explanation) -> str:
    """The pair, the sentence, the score's parts (own term, the listed items, the rest, the
    text share) and the best paths."""
    lines = [
        f"user {e.user} <- item {e.item} {e.title}: score {e.score:.4f} ({e.method})",
        f"  {e.sentence}",
        f"  {e.own:+.4f}  the user's own embedding (ID row and text)",
    ]
    for term in e.history:
        also = e.also_rated.get(term.node)
        also = "" if also is None else f"  ({also} other users have both)"
        lines.append(f"  {term.contribution:+.4f}  {term.title}{also}")
    others = e.history_size - len(e.history)
    if others:
        lines.append(f"  {e.rest:+.4f}  the user's {others} other items")
    if e.text is not None:
        lines.append(
            f"  text x text {e.text['text']:+.4f}, IDs x IDs {e.text['ids']:+.4f}, mixed "
            f"{e.text['user_text_item_ids'] + e.text['user_ids_item_text']:+.4f}"
        )
    if e.paths:
        lines.append("  best paths:")
        for path in e.paths:
            via = f" -> user {path.via}" if path.via is not None else ""
            if path.via == e.user:
                via = " -> the user again"
            lines.append(f"    {path.contribution:+.4f}  {path.title}{via}")
    return "\n".join(lines)
