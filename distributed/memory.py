"""Resident memory of this process, split into what it shares and what it holds alone."""

from __future__ import annotations

import resource
from pathlib import Path

SMAPS = Path("/proc/self/smaps_rollup")


def process_memory() -> dict[str, int]:
    """Bytes: ``rss`` (resident), ``pss`` (shared pages divided among their users) and ``uss``
    (private pages only: what the process would free on exit). Linux reads
    ``/proc/self/smaps_rollup``; elsewhere only the peak ``rss`` is known."""
    if not SMAPS.exists():
        return {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    fields = {}
    for line in SMAPS.read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }
