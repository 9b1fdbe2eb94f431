"""Command-line numbers checked as they are parsed: argparse types that refuse a value
outside its range, NaN or a non-number with the flag's name (argparse adds it) before any work
starts."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole(minimum: int = 1) -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its own messages
    return parse


def real(
    low: float = 0.0, high: float = math.inf, low_open: bool = True, high_open: bool = True
) -> Callable[[str], float]:
    """An argparse type: a number in ``(low, high)``, each end closed when ``*_open`` is
    false; NaN is refused, and an infinity unless that end is infinite and closed."""
    lower, upper = "(" if low_open else "[", ")" if high_open else "]"
    bounds = f"{lower}{low:g}, {high:g}{upper}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        inside = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high
        )
        if math.isnan(value) or not inside:
            raise argparse.ArgumentTypeError(f"{text} is not in {bounds}")
        return value

    parse.__name__ = "number"
    return parse
