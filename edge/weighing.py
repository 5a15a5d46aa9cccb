"""Turning a stream of scale readings into weighings (pure; no I/O, no clock reads).

Legal-for-trade habits: only stable frames make a weighing; overload, underload and
a non-positive net never do; the scale must come back to zero before the next load
is recorded, so one load standing on the platform is recorded once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from edge.scales.reading import Reading, Stability, WeightKind


class TareSource(StrEnum):
    """Where the tare of a platform weighing comes from."""

    CONFIGURED = "configured"  # a known container/pallet tare from config (0 for none)
    SCALE = "scale"  # the scale reports net (NT) after its own tare (TR)


@dataclass(frozen=True, slots=True)
class Measurement:
    """A weighing's numbers, exact, with the frames that proved them."""

    gross_kg: Decimal
    tare_kg: Decimal
    net_kg: Decimal
    unit: str
    frames: tuple[bytes, ...]


def kg_str(value: Decimal) -> str:
    """Wire form of a kg value: plain decimal, no exponent, at most 3 places."""
    quantised = value.quantize(Decimal("0.001"))
    if quantised != value:
        raise ValueError(f"{value} kg is finer than the 1 g the protocol carries")
    text = format(quantised.normalize(), "f")
    return "0" if text in {"-0", "0"} else text


class PlatformDetector:
    """Platform scale at a reception point: load placed, settles, is recorded once.

    A load is recorded when ``settle_readings`` consecutive stable frames show the
    same weight at or above ``min_load_kg``. The detector re-arms only after a stable
    reading within ``zero_band_kg`` of zero (load removed).

    It also starts *un-armed*: after a restart (power cut, crash) a load still standing
    on the platform may already be in the journal, so nothing is recorded until the
    platform has been seen empty. The operator sees no "recorded" signal and lifts
    and re-places the load if it was not.
    """

    def __init__(
        self,
        *,
        min_load_kg: Decimal,
        settle_readings: int = 3,
        zero_band_kg: Decimal = Decimal("0.5"),
        tare_source: TareSource = TareSource.CONFIGURED,
        tare_kg: Decimal = Decimal(0),
    ) -> None:
        if settle_readings < 1:
            raise ValueError("settle_readings must be at least 1")
        self.min_load_kg = min_load_kg
        self.settle_readings = settle_readings
        self.zero_band_kg = zero_band_kg
        self.tare_source = tare_source
        self.tare_kg = tare_kg
        self.counters: Counter[str] = Counter()
        self._armed = False
        self._run: list[Reading] = []
        self._scale_tare: Decimal | None = None

    @property
    def armed(self) -> bool:
        return self._armed

    def feed(self, reading: Reading) -> Measurement | None:
        if reading.kind is WeightKind.TARE:
            if reading.usable:
                self._scale_tare = reading.weight_kg
            return None
        if not reading.usable:
            # Unstable, overload or underload: whatever was settling starts over.
            if reading.stability is not Stability.UNSTABLE:
                self.counters[f"refused_{reading.stability.value}"] += 1
            self._run.clear()
            return None
        weight = reading.weight_kg
        assert weight is not None  # guaranteed by .usable
        if abs(weight) <= self.zero_band_kg:
            self._armed = True
            self._run.clear()
            return None
        if not self._armed or weight < self.min_load_kg:
            self._run.clear()
            return None
        if self._run and (
            self._run[-1].weight_kg != weight or self._run[-1].kind is not reading.kind
        ):
            self._run.clear()
        self._run.append(reading)
        if len(self._run) < self.settle_readings:
            return None
        frames = tuple(r.raw for r in self._run)
        self._run.clear()
        measurement = self._measure(reading, weight, frames)
        if measurement is not None:
            self._armed = False
        return measurement

    def _measure(
        self, reading: Reading, weight: Decimal, frames: tuple[bytes, ...]
    ) -> Measurement | None:
        if reading.kind is WeightKind.NET:
            tare = reading.tare_kg or self._scale_tare or self.tare_kg
            gross, net = weight + tare, weight
        else:
            tare = self.tare_kg if self.tare_source is TareSource.CONFIGURED else Decimal(0)
            gross, net = weight, weight - tare
        if net <= 0:
            self.counters["refused_non_positive_net"] += 1
            self._armed = False  # wait for the platform to clear rather than retrying
            return None
        return Measurement(gross, tare, net, reading.unit, frames)
