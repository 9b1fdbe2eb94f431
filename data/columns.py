"""Strings kept as Arrow columns: one buffer for millions of ids or texts, no Python object each.

:class:`TextColumn` is a read-only ``Sequence[str]`` over an Arrow string array, so code that
indexes or iterates node ids works unchanged while vectorised code takes ``.arrow``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# The characters Python's str.strip() removes (str.isspace; none lies above U+3000), so that a
# vectorised strip gives exactly the ids a row-by-row reader gives.
PY_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
_ITER_CHUNK = 1 << 16
# Bytes a value's UTF-8 can begin (end) with when it begins (ends) with such whitespace: ASCII
# whitespace, lead bytes of U+0085/U+00A0 (C2), U+1680 (E1), U+2000-U+205F (E2), U+3000 (E3);
# at the end any continuation byte (a test may flag more values than need it, never fewer).
_ASCII_SPACE = [c for c in range(128) if chr(c).isspace()]
_MAY_BEGIN_SPACE = np.zeros(256, dtype=bool)
_MAY_BEGIN_SPACE[[*_ASCII_SPACE, 0xC2, 0xE1, 0xE2, 0xE3]] = True
_MAY_END_SPACE = np.zeros(256, dtype=bool)
_MAY_END_SPACE[[*_ASCII_SPACE, *range(0x80, 0xC0)]] = True


class TextColumn(Sequence[str]):
    """``[N]`` strings in an Arrow array (``.arrow``); ``column[i]`` is a ``str``."""

    def __init__(self, values: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            raise TypeError(f"a TextColumn holds strings, not {values.type}")
        if values.null_count:
            raise ValueError("a TextColumn has no missing values")
        self.arrow = values

    def __len__(self) -> int:
        return len(self.arrow)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return TextColumn(pc.take(self.arrow, pa.array(range(len(self))[index], pa.int64())))
        n = len(self.arrow)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} values")
        return self.arrow[index % n].as_py()

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self.arrow), _ITER_CHUNK):
            yield from self.arrow.slice(start, _ITER_CHUNK).to_pylist()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TextColumn):
            return self.arrow.equals(other.arrow)
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self.arrow.slice(0, 3).to_pylist())
        return f"TextColumn([{head}{', ...' if len(self) > 3 else ''}], n={len(self)})"

    __hash__ = None  # type: ignore[assignment]


def arrow_strings(values: Sequence[str]) -> pa.Array:
    """``values`` as an Arrow string array (no copy for a :class:`TextColumn`)."""
    if isinstance(values, TextColumn):
        return values.arrow
    return pa.array(list(values), pa.string())


def may_need_strip(values: pa.Array) -> bool:
    """Whether some value of a string array is empty or may begin or end with whitespace, from
    its first and last bytes (False is exact; True may be a false alarm). ~10x cheaper than
    :func:`strip`, which most id columns never need."""
    width = np.int64 if pa.types.is_large_string(values.type) else np.int32
    _, offsets, data = values.buffers()
    offsets = np.frombuffer(offsets, width, len(values) + 1, values.offset * width().itemsize)
    if len(values) == 0:
        return False
    starts, ends = offsets[:-1], offsets[1:]
    if (ends <= starts).any():
        return True
    data = np.frombuffer(data, np.uint8)
    return bool(_MAY_BEGIN_SPACE[data[starts]].any() or _MAY_END_SPACE[data[ends - 1]].any())


_NUMPY_TYPES = {
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def as_numpy(values: pa.Array) -> np.ndarray:
    """A numeric Arrow array without missing values as a read-only numpy view (no copy, and
    unlike ``to_numpy`` no pandas import: a quarter second on first use)."""
    if values.null_count:
        raise ValueError("as_numpy takes arrays without missing values")
    dtype = np.dtype(_NUMPY_TYPES[values.type])
    return np.frombuffer(values.buffers()[1], dtype, len(values), values.offset * dtype.itemsize)


def strip(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Python's ``str.strip()`` of every value, vectorised."""
    return pc.utf8_trim(values, characters=PY_WHITESPACE)
