"""The profiles file ``gnnrec profile`` writes (:mod:`gnnrec.explain.profiles`), read for
``data.user_text = "profile"``: JSON lines ``{"user", "profile", "generated"}``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path


def read_profiles(path: str | Path, user_ids: Sequence[str]) -> list[str]:
    """Each user's profile from a ``gnnrec profile`` file, in ``user_ids`` order; ``ValueError``
    naming the file and line of a bad line, or the users it lacks."""
    path = Path(path)
    found: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    found[str(row["user"])] = str(row["profile"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(
                        f"{path}, line {line_no}: not a profile line (JSON with user and profile)"
                    ) from None
    except OSError as err:
        raise ValueError(f"data.profiles_path {path}: cannot read it ({err.strerror})") from None
    missing = [u for u in user_ids if u not in found]
    if missing:
        raise ValueError(
            f"{path}: no profile for {len(missing)} of the users (e.g. {missing[0]!r}); "
            "write it again with gnnrec profile for this data"
        )
    return [found[u] for u in user_ids]
