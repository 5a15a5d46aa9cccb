"""Turning a stream of scale readings into weighings (pure; no I/O, no clock reads).

Legal-for-trade habits: only stable frames make a weighing; overload, underload and
a non-positive net never do; the scale must come back to zero before the next load
is recorded, so one load standing on the platform is recorded once.

Weights finer than the gram (a laboratory or counting balance, ``+01500.25 g``) are
read and settle like any other, but a settled load whose gross, tare or net is not
a whole number of grams is *refused* (``refused_sub_gram``, with the frame in the
reason) and the platform must clear before the next load. The wire carries grams
and the money path never rounds before its documented step, so the agent does not
round a weight the scale indicated: the recorded number is always the one the
indicator showed, which its raw frames prove.

* :class:`PlatformDetector` — a load placed, settled, recorded once (platform scales
  and each pass over a weighbridge).
* :func:`pair_passes` — a weighbridge's two passes make one gross/tare/net.
* :class:`PickupDetector` — a container on load cells: the lasting drop of its
  settled weight at a pickup is the collected net.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from edge.protocol import MAX_KG, whole_grams
from edge.scales.reading import Reading, Stability, WeightKind


class TareSource(StrEnum):
    """Where the tare of a platform weighing comes from."""

    CONFIGURED = "configured"  # a known container/pallet tare from config (0 for none)
    SCALE = "scale"  # the scale reports net (NT) after its own tare (TR)
    NET = "net"  # the scale sends net and no tare is known: recorded with tare 0


@dataclass(frozen=True, slots=True)
class Measurement:
    """A weighing's numbers, exact, with the frames that proved them."""

    gross_kg: Decimal
    tare_kg: Decimal
    net_kg: Decimal
    unit: str
    frames: tuple[bytes, ...]


def _frame(raw: bytes) -> str:
    return repr(raw[:48])


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
        #: Why the last :meth:`feed` refused a settled load (None: it did not).
        self.refused: str | None = None
        self._armed = False
        self._run: list[Reading] = []
        self._scale_tare: Decimal | None = None

    @property
    def armed(self) -> bool:
        return self._armed

    def feed(self, reading: Reading) -> Measurement | None:
        self.refused = None
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
        if reading.kind is WeightKind.NET and self.tare_source is TareSource.NET:
            tare = Decimal(0)
        elif reading.kind is WeightKind.NET:
            tare = reading.tare_kg or self._scale_tare or self.tare_kg
        else:
            tare = self.tare_kg if self.tare_source is TareSource.CONFIGURED else Decimal(0)
        # Checked before any arithmetic: whole grams add and subtract exactly.
        if not (whole_grams(weight) and whole_grams(tare)):
            self._refuse(
                "sub_gram",
                f"{weight} kg (tare {tare} kg) is finer than the gram the record carries;"
                f" frame {_frame(reading.raw)}",
            )
            return None
        if tare < 0:
            # A scale's tare below zero (``ST,TR,-…``) would make gross lighter than net.
            self._refuse("negative_tare", f"the tare {tare} kg is below zero")
            return None
        if reading.kind is WeightKind.NET:
            gross, net = weight + tare, weight
        else:
            gross, net = weight, weight - tare
        if gross > MAX_KG:
            self._refuse("out_of_range", f"gross {gross} kg is beyond what a record carries")
            return None
        if net <= 0:
            self.counters["refused_non_positive_net"] += 1
            self._armed = False  # wait for the platform to clear rather than retrying
            return None
        return Measurement(gross, tare, net, reading.unit, frames)

    def _refuse(self, counter: str, reason: str) -> None:
        self.counters[f"refused_{counter}"] += 1
        self.refused = reason
        self._armed = False  # the load was seen: wait for the platform to clear


def pair_passes(first_kg: Decimal, second_kg: Decimal) -> tuple[Decimal, Decimal, Decimal]:
    """(gross, tare, net) of a two-pass weighing, whichever pass was the heavy one:
    a delivery comes in full and leaves empty, a collection the other way round."""
    gross, tare = max(first_kg, second_kg), min(first_kg, second_kg)
    return gross, tare, gross - tare


@dataclass(frozen=True, slots=True)
class Level:
    """A container's settled weight, with the frames that proved it."""

    kg: Decimal
    unit: str
    frames: tuple[bytes, ...]


class PickupDetector:
    """A container standing on load cells.

    The settled weight (``settle_readings`` identical stable frames) is the container's
    level; deposits raise it. A new level at least ``min_drop_kg`` below the previous
    one is a pickup: the drop is the collected net (gross = level before, tare = level
    after). ``feed`` returns ``("level", Level)`` when the level moved (the caller
    persists it, so a restart keeps the "before") or ``("pickup", Measurement)``.
    """

    def __init__(
        self,
        *,
        min_drop_kg: Decimal,
        settle_readings: int = 3,
        zero_band_kg: Decimal = Decimal("0.5"),
        level: Level | None = None,
    ) -> None:
        self.min_drop_kg = min_drop_kg
        self.settle_readings = settle_readings
        self.zero_band_kg = zero_band_kg
        self.level = level
        self.counters: Counter[str] = Counter()
        #: Why the last :meth:`feed` refused a pickup (None: it did not).
        self.refused: str | None = None
        self._run: list[Reading] = []

    def feed(self, reading: Reading) -> tuple[str, Level | Measurement] | None:
        self.refused = None
        if not reading.usable or reading.kind is WeightKind.TARE:
            if reading.stability in (Stability.OVERLOAD, Stability.UNDERLOAD):
                self.counters[f"refused_{reading.stability.value}"] += 1
            self._run.clear()
            return None
        weight = reading.weight_kg
        assert weight is not None
        if self._run and self._run[-1].weight_kg != weight:
            self._run.clear()
        self._run.append(reading)
        if len(self._run) < self.settle_readings:
            return None
        frames = tuple(r.raw for r in self._run)
        self._run.clear()
        new = Level(weight, reading.unit, frames)
        before = self.level
        if before is not None and abs(before.kg - weight) <= self.zero_band_kg:
            return None
        self.level = new
        if before is not None and before.kg - weight >= self.min_drop_kg:
            if not (whole_grams(before.kg) and whole_grams(weight)):
                self.counters["refused_sub_gram"] += 1
                self.refused = (
                    f"pickup from {before.kg} to {weight} kg is finer than the gram the"
                    f" record carries; frame {_frame(reading.raw)}"
                )
                return ("level", new)
            if weight < 0:
                self.counters["refused_negative"] += 1
                return ("level", new)
            half = max(1, len(before.frames) // 2), max(1, len(frames) // 2)
            evidence = before.frames[-half[0] :] + frames[-half[1] :]
            return (
                "pickup",
                Measurement(before.kg, weight, before.kg - weight, reading.unit, evidence),
            )
        return ("level", new)
