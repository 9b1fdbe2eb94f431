"""Delimited text files read row by row, with the line number of every row kept for errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path

from gnnrec.data.errors import DataError


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The whole file decoded; an undecodable byte is reported with its line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError("is a folder, not a file" if path.is_dir() else "file not found", path)
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"cannot decode byte {raw[err.start]:#04x} as {encoding}; "
            "save it as UTF-8 (MovieLens 100K/1M files are read as latin-1 by their loaders)",
            path,
            line,
        ) from None
    if not text.strip():
        raise DataError("file is empty", path)
    return text


def iter_rows(
    path: str | Path,
    columns: Sequence[str] | None = None,
    *,
    delimiter: str = ",",
    header: bool = True,
    encoding: str = "utf-8",
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yields ``(line_number, row)`` for every data row of a delimited file.

    With ``header=True`` the first row names the columns and every name in ``columns`` must be
    among them; without a header, ``columns`` names the fields in order. Rows with the wrong
    number of fields raise :class:`DataError` with their line. A multi-character delimiter
    (``::`` in MovieLens 1M) is split literally, without quoting rules.
    """
    text = read_text(path, encoding)
    if len(delimiter) == 1:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        rows = ((reader.line_num, fields) for fields in reader)
    else:
        rows = ((i, line.split(delimiter)) for i, line in enumerate(text.splitlines(), 1) if line)
    names: list[str]
    if header:
        first = next(rows, None)
        if first is None:
            raise DataError("file is empty", path)
        names = [name.strip() for name in first[1]]
        missing = [c for c in columns or () if c not in names]
        if missing:
            raise DataError(f"missing column(s) {missing}; the header has {names}", path, 1)
    else:
        if columns is None:
            raise ValueError("columns are required when the file has no header")
        names = list(columns)
    count = 0
    for line, fields in rows:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        if len(fields) != len(names):
            raise DataError(
                f"expected {len(names)} fields ({delimiter!r}-separated), found {len(fields)}",
                path,
                line,
            )
        count += 1
        yield line, dict(zip(names, fields))
    if count == 0:
        raise DataError("file has no data rows", path)


def parse_float(value: str, column: str, path: str | Path, line: int) -> float:
    """A finite float, or a :class:`DataError` naming the column, file and line."""
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{column} {value!r} is not a number", path, line) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise DataError(f"{column} is {value!r}; it must be a finite number", path, line)
    return number


def parse_weight(value: str, column: str, path: str | Path, line: int) -> float:
    """An edge weight: a finite float >= 0, or a :class:`DataError` naming the column, file
    and line."""
    number = parse_float(value, column, path, line)
    if number < 0:
        raise DataError(f"{column} {value!r} is negative: edge weights must be >= 0", path, line)
    return number


def parse_int(value: str, column: str, path: str | Path, line: int) -> int:
    """An integer, or a :class:`DataError` naming the column, file and line."""
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{column} {value!r} is not an integer", path, line) from None
