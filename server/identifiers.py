"""Kazakh business identification numbers (BIN, БСН/БИН): 12 digits, the last a check digit.

The check digit is the weighted sum of the first eleven digits mod 11 with weights
1..11; if that is 10, a second pass uses weights 3..11, 1, 2; a second 10 means the
number cannot be valid.
"""

from __future__ import annotations

from typing import Final

_W1: Final = tuple(range(1, 12))
_W2: Final = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)


def bin_check_digit(first11: str) -> int | None:
    """The check digit for eleven digits, or None if no check digit can make them valid."""
    digits = [int(c) for c in first11]
    for weights in (_W1, _W2):
        check = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        if check != 10:
            return check
    return None


def bin_problem(value: str) -> str | None:
    """Why ``value`` is not a valid BIN, or None if it is."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return f"{value!r} is not 12 digits"
    check = bin_check_digit(value[:11])
    if check is None or check != int(value[11]):
        return f"{value} fails the BIN check digit"
    return None


def make_bin(first11: str) -> str:
    """Complete eleven digits with their check digit (for test and demo data)."""
    check = bin_check_digit(first11)
    if check is None:
        raise ValueError(f"{first11}: no valid check digit exists")
    return f"{first11}{check}"
