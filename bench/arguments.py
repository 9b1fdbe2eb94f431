"""The benches' results file, checked as it is parsed (a bad one is refused by name before any
measurement starts); their numbers use :mod:`gnnrec.common.flags`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def results_file(text: str) -> Path:
    """An argparse type for ``--output``: a ``.jsonl`` file that is new or holds earlier rows
    of a bench (the new rows are appended), whose plot beside it (``.png``) is new or that
    file's own. Anything else (a folder, a file of other contents, a plot with no rows beside
    it) is refused, so that a bench never overwrites a file it did not write."""
    path = Path(text)
    if path.suffix != ".jsonl":
        raise argparse.ArgumentTypeError(f"{text}: results are written to a .jsonl file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, not a results file")
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {path.parent} is a file, not a folder")
    png = path.with_suffix(".png")
    if path.exists():
        if not _holds_rows(path):
            raise argparse.ArgumentTypeError(
                f"{text}: holds no bench results (JSON lines with a 'bench' key): give a new file"
            )
    elif png.exists():
        raise argparse.ArgumentTypeError(
            f"{text}: its plot {png} would replace a file that no bench wrote beside it"
        )
    return path


def _holds_rows(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline()
        row = json.loads(first) if first.strip() else {"bench": None}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(row, dict) and "bench" in row


def add_output_argument(parser: argparse.ArgumentParser, topic: str) -> None:
    """``--output``: the results file (default ``bench/results/<topic>.jsonl``)."""
    parser.add_argument(
        "--output",
        type=results_file,
        default=f"bench/results/{topic}.jsonl",
        help="JSON-lines results, appended to (a plot is drawn beside it)",
    )
