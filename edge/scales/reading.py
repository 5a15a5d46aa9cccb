"""What every scale driver produces: one parsed frame, in the scale's words and in kg."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from edge.protocol import MAX_KG


class FrameError(ValueError):
    """A frame that cannot be read as a weight: garbage, bad checksum, unknown unit.

    The reason is short and stable so that it can double as a counter name.
    """

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(f"{reason}: {raw[:48]!r}")
        self.reason = reason
        self.raw = raw


class Stability(StrEnum):
    STABLE = "stable"
    UNSTABLE = "unstable"
    OVERLOAD = "overload"
    UNDERLOAD = "underload"


class WeightKind(StrEnum):
    GROSS = "gross"
    NET = "net"
    TARE = "tare"


@dataclass(frozen=True, slots=True)
class Reading:
    """One frame from a scale.

    ``weight_kg`` is exact (converted from the scale's ``unit`` without rounding) and
    is ``None`` when the scale sent no usable number (overload, underload).
    ``tare_kg`` is set by protocols that report tare in the same frame (Toledo).
    """

    stability: Stability
    kind: WeightKind
    weight_kg: Decimal | None
    unit: str
    raw: bytes
    tare_kg: Decimal | None = None

    @property
    def usable(self) -> bool:
        return self.stability is Stability.STABLE and self.weight_kg is not None


class ScaleReader(Protocol):
    """A driver over a port: returns the next reading, or None when nothing usable came."""

    counters: Counter[str]

    def read(self) -> Reading | None: ...

    def close(self) -> None: ...


def count_reading(counters: Counter[str], reading: Reading) -> None:
    """The counters every family keeps: frames that can never make a weighing.

    Overload, underload and unstable frames are counted by their stability; a stable
    frame with a negative weight (a net below zero) by ``negative``.
    """
    if reading.stability is not Stability.STABLE:
        counters[reading.stability.value] += 1
    elif reading.weight_kg is not None and reading.weight_kg < 0:
        counters["negative"] += 1


def count_bad(counters: Counter[str], exc: FrameError) -> None:
    counters["bad_frames"] += 1
    counters[f"bad:{exc.reason}"[:64]] += 1


_TO_KG = {"kg": 0, "t": 3, "g": -3}  # powers of ten: a metric conversion is a shift
_MAX_DIGITS = 20  # far more than any indicator shows; longer text is line noise


def to_kg(number: str, unit: str, raw: bytes) -> Decimal:
    """Convert a scale's number in its own unit to kg, exactly.

    Only metric units are accepted: pounds are not a trade unit in Kazakhstan, and a
    pound conversion cannot be exact in grams. The result is exact or refused: a
    number with more digits than any indicator shows, or heavier than the wire can
    carry (:data:`edge.protocol.MAX_KG`), is a :class:`FrameError`, never a rounded
    or infinite value that would raise further down. A value finer than the gram is
    returned as it is; the workflow refuses it as a weighing (``refused_sub_gram``).
    """
    shift = _TO_KG.get(unit.strip().lower())
    if shift is None:
        raise FrameError(f"unit {unit.strip()!r} is not a metric trade unit", raw)
    try:
        value = Decimal(number.replace(" ", ""))
    except ArithmeticError:
        raise FrameError("weight is not a number", raw) from None
    if not value.is_finite():
        raise FrameError("weight is not a number", raw)
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    if len(digits) > _MAX_DIGITS or not -_MAX_DIGITS <= exponent <= _MAX_DIGITS:
        raise FrameError("weight has too many digits", raw)
    # scaleb on a short coefficient only moves the exponent: exact, never rounded.
    kg = value.scaleb(shift)
    if abs(kg) > MAX_KG:
        raise FrameError("weight out of range", raw)
    return kg
