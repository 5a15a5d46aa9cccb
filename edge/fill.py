"""Fill level of a container from an ultrasonic distance (pure: no I/O, time passed in).

* :class:`Geometry` turns a distance into a fill percentage: the level above the
  bottom over the level at "full", or — with a volume table for tapered or rounded
  containers — the volume at that level over the volume at full.
* :class:`MedianFilter` smooths samples and throws out outliers (a wasp, a bag
  falling past the sensor), but accepts a *lasting* step, because a pickup is one.
* :class:`FillTracker` reports a reading when the level changed enough or a report
  interval passed, and raises events: ``full`` (with hysteresis), ``emptied`` (a
  sharp drop that lasts), ``overflow`` (the surface above the full line or inside
  the sensor's blind zone) and ``sensor_fault`` (no echo, or silence, for too long).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from statistics import median_low
from typing import Final

from edge.protocol import FillEvent

HUNDRED: Final = Decimal(100)
CENT: Final = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Geometry:
    """Distances are from the sensor face, in mm.

    ``empty_mm``: to the bottom (an empty container); ``full_mm``: to the surface at
    100 %; ``blind_zone_mm``: closer than this the sensor cannot measure.
    ``volume_table``: (level above the bottom in mm, litres) pairs, increasing.
    """

    empty_mm: int
    full_mm: int
    blind_zone_mm: int = 0
    volume_table: tuple[tuple[int, Decimal], ...] = ()

    def __post_init__(self) -> None:
        if not self.empty_mm > self.full_mm >= self.blind_zone_mm >= 0:
            raise ValueError("need empty_mm > full_mm >= blind_zone_mm >= 0")
        levels = [lv for lv, _ in self.volume_table]
        volumes = [v for _, v in self.volume_table]
        if self.volume_table and (
            len(levels) < 2
            or levels != sorted(set(levels))
            or volumes != sorted(volumes)
            or levels[0] > 0
            or levels[-1] < self.empty_mm - self.full_mm
        ):
            raise ValueError(
                "volume_table needs at least two (level_mm, litres) rows, increasing, from"
                " level 0 up to at least the full level"
            )

    @property
    def full_level_mm(self) -> int:
        return self.empty_mm - self.full_mm

    def volume_l(self, level_mm: int) -> Decimal:
        """Litres at ``level_mm`` by linear interpolation in the volume table."""
        table = self.volume_table
        levels = [lv for lv, _ in table]
        i = bisect_left(levels, level_mm)
        if i < len(levels) and levels[i] == level_mm:
            return table[i][1]
        if i == 0:
            return table[0][1]
        if i >= len(levels):
            return table[-1][1]
        (l0, v0), (l1, v1) = table[i - 1], table[i]
        return v0 + (v1 - v0) * Decimal(level_mm - l0) / Decimal(l1 - l0)

    def fill_pct(self, distance_mm: int) -> Decimal:
        """0-100, two places: clamp((empty - d) / (empty - full), 0, 1), or by volume."""
        level = min(max(self.empty_mm - distance_mm, 0), self.full_level_mm)
        if self.volume_table:
            full = self.volume_l(self.full_level_mm)
            frac = self.volume_l(level) / full if full else Decimal(0)
        else:
            frac = Decimal(level) / Decimal(self.full_level_mm)
        pct = min(max(frac * HUNDRED, Decimal(0)), HUNDRED)
        return pct.quantize(CENT, rounding=ROUND_HALF_EVEN)


class MedianFilter:
    """Median of the last ``window`` samples; a sample further than ``outlier_mm`` from
    it is held back, unless ``confirm`` such samples in a row agree with each other —
    then the level really moved and the window restarts from them."""

    def __init__(self, window: int = 5, outlier_mm: int = 150, confirm: int = 3) -> None:
        if window < 1 or confirm < 1:
            raise ValueError("window and confirm must be at least 1")
        self.window: deque[int] = deque(maxlen=window)
        self.outlier_mm = outlier_mm
        self.confirm = confirm
        self.outliers = 0
        self._held: list[int] = []

    def push(self, mm: int) -> int | None:
        """The filtered distance after this sample, or None while a jump is unconfirmed."""
        if len(self.window) >= min(3, self.window.maxlen or 3):
            current = median_low(self.window)
            if abs(mm - current) > self.outlier_mm:
                self._held.append(mm)
                if len(self._held) >= self.confirm and (
                    max(self._held) - min(self._held) <= self.outlier_mm
                ):
                    self.window.clear()
                    self.window.extend(self._held[-(self.window.maxlen or 1) :])
                    self._held.clear()
                    return median_low(self.window)
                if len(self._held) >= self.confirm:
                    self._held = self._held[1:]  # the oldest was a lone outlier after all
                self.outliers += 1
                return None
        self._held.clear()
        self.window.append(mm)
        return median_low(self.window)


@dataclass(frozen=True, slots=True)
class FillSettings:
    geometry: Geometry
    full_pct: Decimal = Decimal(90)
    """At or above: ``full``; re-armed below ``full_pct - hysteresis_pct``."""
    hysteresis_pct: Decimal = Decimal(10)
    emptied_drop_pct: Decimal = Decimal(30)
    """A drop at least this large, within ``emptied_window_s``, that lasts: ``emptied``."""
    emptied_window_s: float = 900.0
    emptied_confirm: int = 3
    """Filtered readings in a row that must stay dropped before ``emptied`` is reported."""
    report_change_pct: Decimal = Decimal(5)
    report_interval_s: float = 900.0
    fault_samples: int = 10
    """Consecutive samples without an echo that make a ``sensor_fault``."""
    silence_fault_s: float = 60.0
    """No sample at all for this long is a ``sensor_fault`` too."""


@dataclass(frozen=True, slots=True)
class FillUpdate:
    """A reading to record: the filtered distance, its fill level and the event (if any)."""

    distance_mm: int
    fill_pct: Decimal
    event: FillEvent | None = None


class FillTracker:
    def __init__(self, settings: FillSettings, *, window: int = 5, outlier_mm: int = 150) -> None:
        self.s = settings
        self.filter = MedianFilter(window=window, outlier_mm=outlier_mm)
        self.is_full = False
        self.overflowing = False
        self.faulted = False
        self.distance_mm: int | None = None
        self.fill_pct: Decimal | None = None
        #: Samples that were not a distance at all (see :meth:`feed`).
        self.rejected = 0
        self._invalid = 0
        self._last_sample: float | None = None
        self._last_report: tuple[float, Decimal] | None = None
        self._history: deque[tuple[float, Decimal]] = deque()
        self._drop_reference: Decimal | None = None
        self._drop_count = 0

    # ------------------------------------------------------------------ input

    def feed(self, distance_mm: int | None, now: float) -> list[FillUpdate]:
        """One sample (None: no echo). Returns the readings to record, usually none.

        A value that is not a distance (negative, not an integer: a float NaN from a
        driver) counts as no echo, so a sensor sending nonsense ends in
        ``sensor_fault`` instead of an exception in the agent loop.
        """
        self._last_sample = now
        if distance_mm is not None and (
            type(distance_mm) is not int or distance_mm < 0  # bool is no distance either
        ):
            self.rejected += 1
            distance_mm = None
        if distance_mm is None:
            self._invalid += 1
            if self._invalid >= self.s.fault_samples:
                return self._fault()
            return []
        self._invalid = 0
        self.faulted = False
        g = self.s.geometry
        filtered = self.filter.push(max(distance_mm, g.blind_zone_mm))
        if filtered is None:
            return []
        self.distance_mm = filtered
        pct = g.fill_pct(filtered)
        self.fill_pct = pct
        event = self._event(filtered, pct, now)
        return self._report(filtered, pct, event, now)

    def tick(self, now: float) -> list[FillUpdate]:
        """Time passing without samples: interval reports and the silence fault."""
        if self._last_sample is None:
            self._last_sample = now
        if now - self._last_sample >= self.s.silence_fault_s:
            return self._fault()
        if (
            self._last_report is not None
            and self.distance_mm is not None
            and self.fill_pct is not None
            and now - self._last_report[0] >= self.s.report_interval_s
        ):
            return self._report(self.distance_mm, self.fill_pct, None, now)
        return []

    # ------------------------------------------------------------------ logic

    def _fault(self) -> list[FillUpdate]:
        if self.faulted:
            return []
        self.faulted = True
        return [
            FillUpdate(self.distance_mm or 0, self.fill_pct or Decimal(0), FillEvent.SENSOR_FAULT)
        ]

    def _event(self, distance: int, pct: Decimal, now: float) -> FillEvent | None:
        s = self.s
        window_max = self._window_max(pct, now)
        event: FillEvent | None = None
        if self._drop_reference is None and window_max - pct >= s.emptied_drop_pct:
            self._drop_reference = window_max
            self._drop_count = 0
        if self._drop_reference is not None:
            if self._drop_reference - pct >= s.emptied_drop_pct:
                self._drop_count += 1
                if self._drop_count >= s.emptied_confirm:
                    self._drop_reference = None
                    self._history.clear()
                    self._history.append((now, pct))
                    self.is_full = pct >= s.full_pct
                    self.overflowing = False
                    event = FillEvent.EMPTIED
            else:
                self._drop_reference = None  # it came back: a transient, not a pickup
        if distance < s.geometry.full_mm:
            if not self.overflowing:
                self.overflowing = True
                event = event or FillEvent.OVERFLOW
        elif self.overflowing and pct <= HUNDRED - s.hysteresis_pct:
            self.overflowing = False
        if pct >= s.full_pct:
            if not self.is_full:
                self.is_full = True
                event = event or FillEvent.FULL
        elif self.is_full and pct <= s.full_pct - s.hysteresis_pct:
            self.is_full = False
        return event

    def _window_max(self, pct: Decimal, now: float) -> Decimal:
        history = self._history
        history.append((now, pct))
        while history and now - history[0][0] > self.s.emptied_window_s:
            history.popleft()
        return max(p for _, p in history)

    def _report(
        self, distance: int, pct: Decimal, event: FillEvent | None, now: float
    ) -> list[FillUpdate]:
        last = self._last_report
        if (
            event is None
            and last is not None
            and abs(pct - last[1]) < self.s.report_change_pct
            and now - last[0] < self.s.report_interval_s
        ):
            return []
        self._last_report = (now, pct)
        return [FillUpdate(distance, pct, event)]


def volume_table(rows: Sequence[Sequence[int | str]]) -> tuple[tuple[int, Decimal], ...]:
    """Config rows ``[[level_mm, "litres"], …]`` as the exact table :class:`Geometry` takes."""
    return tuple((int(level), Decimal(str(litres))) for level, litres in rows)
