"""What every scale driver produces: one parsed frame, in the scale's words and in kg."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


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


_TO_KG = {"kg": Decimal(1), "t": Decimal(1000), "g": Decimal("0.001")}


def to_kg(number: str, unit: str, raw: bytes) -> Decimal:
    """Convert a scale's number in its own unit to kg, exactly.

    Only metric units are accepted: pounds are not a trade unit in Kazakhstan, and a
    pound conversion cannot be exact in grams.
    """
    factor = _TO_KG.get(unit.strip().lower())
    if factor is None:
        raise FrameError(f"unit {unit.strip()!r} is not a metric trade unit", raw)
    try:
        value = Decimal(number.replace(" ", ""))
    except ArithmeticError:
        raise FrameError("weight is not a number", raw) from None
    if not value.is_finite():
        raise FrameError("weight is not a number", raw)
    return value * factor
