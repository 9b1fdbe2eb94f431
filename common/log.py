"""The ``gnnrec`` logger. Library code reports through ``logging`` (a user silences or
redirects it like any other library: ``logging.getLogger("gnnrec").setLevel(...)``); progress
bars stay on stderr. The CLI attaches a plain handler that prints messages as they are."""

from __future__ import annotations

import logging
import sys

ROOT = "gnnrec"


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
    """What the CLI does: messages of ``level`` and above on stderr, as bare lines."""
    logger = logging.getLogger(ROOT)
    if not any(getattr(h, "gnnrec_console", False) for h in logger.handlers):
        handler = _ProgressSafeHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
