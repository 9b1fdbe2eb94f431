"""The ``gnnrec`` logger. Library code reports through ``logging`` (a user silences or
redirects it like any other library: ``logging.getLogger("gnnrec").setLevel(...)``); progress
bars stay on stderr. The CLI attaches a plain handler that prints messages as they are, at the
level ``-v``/``--quiet`` or ``GNNREC_LOG_LEVEL`` (``DEBUG``, ``INFO``, ...) choose, and a run
keeps its own log file (:func:`log_to_file`)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = "gnnrec"
LEVEL_VARIABLE = "GNNREC_LOG_LEVEL"


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (``gnnrec.train.trainer`` -> a child of ``gnnrec``)."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


class _ProgressSafeHandler(logging.Handler):
    """Writes records to stderr through ``tqdm.write``, so a line never lands inside a progress
    bar that is being drawn."""

    gnnrec_console = True

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise
            self.handleError(record)


def log_to_console(level: int = logging.INFO) -> None:
    """What the CLI does: messages of ``level`` and above on stderr, as bare lines (the level
    is the handler's: a run's log file still gets INFO)."""
    logger = logging.getLogger(ROOT)
    console = [h for h in logger.handlers if getattr(h, "gnnrec_console", False)]
    if not console:
        console = [_ProgressSafeHandler()]
        console[0].setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(console[0])
    console[0].setLevel(level)
    logger.setLevel(min(level, logging.INFO))


def console_level(quiet: bool = False, verbose: bool = False) -> int:
    """The console's level: ``-v`` (DEBUG) or ``--quiet`` (WARNING) when given, else
    ``GNNREC_LOG_LEVEL``, else INFO; ``ValueError`` naming a level that does not exist."""
    if verbose:
        return logging.DEBUG
    if quiet:
        return logging.WARNING
    name = os.environ.get(LEVEL_VARIABLE, "INFO").strip().upper()
    level = logging.getLevelName(name)
    if not isinstance(level, int):
        raise ValueError(
            f"{LEVEL_VARIABLE}={name!r} is no log level; use DEBUG, INFO, WARNING or ERROR"
        )
    return level


@contextmanager
def log_to_file(path: str | Path) -> Iterator[None]:
    """Appends every ``gnnrec`` message of INFO and above to ``path`` (timestamped) while the
    block runs, whatever the console shows."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger(ROOT)
    previous = logger.level
    if previous == logging.NOTSET or previous > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(previous)
