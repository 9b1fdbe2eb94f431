"""Errors raised on bad input data: each names the file and line it comes from."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data, located as ``file:line: message`` so the user can go and fix it."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = self.path or "<data>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")
