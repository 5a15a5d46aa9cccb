"""Identifiers the server checks: Kazakh business identification numbers (BIN, БСН/БИН:
12 digits, the last a check digit), and codes from a fixed list (a mistyped one gets a
"did you mean" hint).

The check digit is the weighted sum of the first eleven digits mod 11 with weights
1..11; if that is 10, a second pass uses weights 3..11, 1, 2; a second 10 means the
number cannot be valid.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
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
    if check is None:
        return f"{value} fails the BIN check digit: no check digit makes {value[:11]}… valid"
    if check != int(value[11]):
        return f"{value} fails the BIN check digit: the last digit should be {check}"
    return None


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """`` (did you mean tyres?)`` for the closest known code, or ``""`` if none is close."""
    choices = list(known)
    folded = {c.casefold(): c for c in choices}
    close = difflib.get_close_matches(value.casefold(), list(folded), n=1, cutoff=0.6)
    return f" (did you mean {folded[close[0]]}?)" if close else ""


def unknown_code(what: str, value: str, known: Iterable[str]) -> str:
    """``unknown category 'tyers' (did you mean tyres?)``."""
    return f"unknown {what} {value!r}{did_you_mean(value, known)}"


def make_bin(first11: str) -> str:
    """Complete eleven digits with their check digit (for test and demo data)."""
    check = bin_check_digit(first11)
    if check is None:
        raise ValueError(f"{first11}: no valid check digit exists")
    return f"{first11}{check}"
