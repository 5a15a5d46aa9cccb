"""Simulated time of a fleet: deliveries scripted over a month with the rhythm of a
working week, and the clocks the agents and the ingest read while the month plays.

A reception point is busiest mid-morning and mid-afternoon on weekdays, quieter on
Saturday and nearly shut on Sunday (:data:`WEEKDAY_WEIGHT`, :data:`HOUR_WEIGHT`).
:class:`FleetClock` is one simulated wall clock shared by every agent and by the
ingest: a driver moves it to each delivery's scripted time and holds it there while
the delivery is weighed, so the agent stamps the scripted time itself — nothing is
rewritten afterwards — and the server receives at the same simulated time, so no
clock alarm rises unless a scenario plants one (:class:`SkewedClock`). Timeouts and
resend pacing keep the real monotonic clock: they are about the network.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable, Iterator, MutableSequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from firmware_sim.scales.script import Load
from server.money.amounts import LOCAL_TZ
from server.money.inputs import parse_period

#: Relative traffic Monday .. Sunday.
WEEKDAY_WEIGHT = (1.0, 1.0, 1.0, 1.0, 0.9, 0.55, 0.12)
#: Relative traffic by local hour while a reception point is open (08:00-18:59).
HOUR_WEIGHT = {
    8: 0.5,
    9: 1.0,
    10: 1.4,
    11: 1.3,
    12: 0.6,
    13: 0.8,
    14: 1.2,
    15: 1.2,
    16: 1.0,
    17: 0.6,
    18: 0.3,
}


@dataclass(frozen=True)
class Rhythm:
    """Relative traffic by weekday (Monday first) and by local opening hour."""

    weekday: tuple[float, ...] = WEEKDAY_WEIGHT
    hour: tuple[tuple[int, float], ...] = tuple(HOUR_WEIGHT.items())


def month_times(
    rng: random.Random, period: str, n: int, rhythm: Rhythm | None = None
) -> list[datetime]:
    """``n`` distinct delivery times (UTC, whole seconds) in ``period`` (YYYY-MM), drawn
    with the weekly and daily rhythm, in order."""
    rhythm = rhythm or Rhythm()
    first, last = parse_period(period)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    day_weights = [rhythm.weekday[d.weekday()] for d in days]
    hours = [h for h, _ in rhythm.hour]
    hour_weights = [w for _, w in rhythm.hour]
    if not any(day_weights) or not any(hour_weights):
        raise ValueError("a rhythm needs some weekday and some hour with traffic")
    if n > len(days) * len(hours) * 3600:
        raise ValueError(f"{n} deliveries do not fit in {period}'s opening hours")
    chosen: set[datetime] = set()
    while len(chosen) < n:
        (day,) = rng.choices(days, day_weights)
        (hour,) = rng.choices(hours, hour_weights)
        local = datetime(
            day.year,
            day.month,
            day.day,
            hour,
            rng.randrange(60),
            rng.randrange(60),
            tzinfo=LOCAL_TZ,
        )
        chosen.add(local.astimezone(UTC))
    return sorted(chosen)


def script_month(
    rng: random.Random,
    period: str,
    deliveries: int,
    min_kg: int,
    max_kg: int,
    rhythm: Rhythm | None = None,
) -> list[Load]:
    """One scale's month: deliveries at rhythm-drawn times, weights on a 0.5 kg division."""
    return [
        Load(kg=Decimal(rng.randint(min_kg * 2, max_kg * 2)) / 2, at=at)
        for at in month_times(rng, period, deliveries, rhythm)
    ]


def instants(loads: Iterable[tuple[datetime, object]]) -> Iterator[tuple[datetime, list[object]]]:
    """Scripted (time, what) pairs grouped by time, in order: the steps of a simulation."""
    steps: dict[datetime, list[object]] = {}
    for at, what in loads:
        steps.setdefault(at, []).append(what)
    for at in sorted(steps):
        yield at, steps[at]


class FleetClock:
    """The simulated wall clock of a whole fleet and its server; it never goes back.

    ``move_to`` jumps (a held clock: a delivery is stamped with its scripted time);
    ``run`` lets it flow ``speed`` times faster than real time from there.
    """

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._base = start
        self._since = time.monotonic()
        self.speed = 0.0
        """0: held; else simulated seconds per real second."""

    def now(self) -> datetime:
        with self._lock:
            if not self.speed:
                return self._base
            return self._base + timedelta(seconds=(time.monotonic() - self._since) * self.speed)

    def move_to(self, at: datetime) -> None:
        """Hold the clock at ``at`` (or where it is, if that is later)."""
        with self._lock:
            current = self._base
            if self.speed:
                current += timedelta(seconds=(time.monotonic() - self._since) * self.speed)
            self._base = max(current, at)
            self._since = time.monotonic()
            self.speed = 0.0

    def run(self, speed: float) -> None:
        """Let the clock flow from where it is, ``speed`` times real time."""
        self.move_to(self.now())
        with self._lock:
            self.speed = speed

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        return True


class SkewedClock:
    """A device whose clock is off the fleet's by ``offset`` (a planted fault: a Pi
    whose NTP never came, a hand-set clock), yet believes it is synchronised."""

    def __init__(self, fleet: FleetClock, offset: timedelta) -> None:
        self.fleet = fleet
        self.offset = offset

    def now(self) -> datetime:
        return self.fleet.now() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        return True


class SiteClocks:
    """One simulated clock per site, kept within ``window`` of each other, so a fleet
    runs as fast as its stack can weigh instead of as fast as one shared clock flows.

    A site is *busy* while a delivery is on its scale: its clock is held at that
    delivery's scripted time, so the agent stamps exactly the script. Between
    deliveries it is *idle* and its clock follows the fleet's present. The present is
    the earliest moment any site still has to play: the held time of a busy site or
    the next scripted time of an idle one (a site with nothing left drops out). A site
    may start its next delivery once that is at most ``window`` past the present, so
    every device clock is in [present, present + window] and the server, reading the
    leading edge, receives each message at most ``window`` after its stamp: a clock
    tolerance of that much more leaves only a planted clock fault to alarm. The present
    never goes back, nor does any site's clock (a conservative parallel simulation
    with ``window`` as its look-ahead).

    The driver (one thread) calls :meth:`next_at`, :meth:`hold` and :meth:`release`;
    agents and the ingest read :meth:`now_of`, :meth:`present` and :meth:`leading`
    from any thread.
    """

    def __init__(
        self,
        start: datetime,
        end: datetime,
        window: timedelta,
        first: dict[str, datetime | None],
        shared: SharedTimes | None = None,
        shard: int = 0,
    ) -> None:
        """``first``: every site with its first delivery's time (None: it has none).
        ``shared``: the fleet is split over processes and these sites are ``shard``."""
        if window <= timedelta(0):
            raise ValueError("the window between site clocks must be positive")
        self._lock = threading.Lock()
        self.end = end
        self.window = window
        self._pending = {site: at for site, at in first.items() if at is not None}
        """Per site with a delivery left: its held time (busy) or next time (idle)."""
        self._held = dict.fromkeys(first, start)
        """Per site: the last time it was held at."""
        self._busy: set[str] = set()
        self._shared = shared
        self._shard = shard
        self._local = start
        self._present = start
        self._leading = start
        with self._lock:
            self._recompute()

    def may_start(self, at: datetime) -> bool:
        """Whether a delivery at ``at`` is within the window of the present."""
        return at <= self.present() + self.window

    def hold(self, site: str, at: datetime) -> None:
        """``site`` is busy with its delivery at ``at``: its clock reads ``at``."""
        with self._lock:
            at = max(at, self._held[site])
            self._held[site] = at
            self._pending[site] = at
            self._busy.add(site)
            self._leading = max(self._leading, at)
            self._recompute()

    def release(self, site: str, next_at: datetime | None) -> None:
        """``site``'s delivery is weighed; it is idle until ``next_at`` (None: done)."""
        with self._lock:
            self._busy.discard(site)
            if next_at is None:
                self._pending.pop(site, None)
            else:
                self._pending[site] = max(next_at, self._held[site])
            self._recompute()

    def _recompute(self) -> None:
        self._local = max(self._local, min(self._pending.values(), default=self.end))
        self._leading = max(self._leading, self._advance())
        if self._shared is not None:
            self._shared.publish(self._shard, self._local, self._leading)

    def _advance(self) -> datetime:
        """The present, from this process's sites and every other shard's (never back)."""
        present = self._local
        if self._shared is not None:
            present = min(present, self._shared.present())
        self._present = max(self._present, present)
        return self._present

    def present(self) -> datetime:
        """The fleet's present: what a site with nothing on its scale reads."""
        with self._lock:
            return self._advance()

    def leading(self) -> datetime:
        """The latest time any site reads: the server's clock (it receives after)."""
        with self._lock:
            if self._shared is not None:
                self._leading = max(self._leading, self._shared.leading())
            return self._leading

    def now_of(self, site: str) -> datetime:
        with self._lock:
            if site in self._busy:
                return self._held[site]
            return max(self._held.get(site, self._present), self._advance())


class SharedTimes:
    """A fleet split over processes (shards): per shard, the earliest moment its sites
    still have to play and the latest any of them has read, as microseconds since the
    epoch in shared memory. The present of the whole fleet is the least of the first,
    the server's clock the greatest of the second; each only grows."""

    def __init__(self, lows: MutableSequence[int], highs: MutableSequence[int]) -> None:
        self.lows = lows
        self.highs = highs

    def publish(self, shard: int, low: datetime, high: datetime) -> None:
        self.lows[shard] = _micros(low)
        self.highs[shard] = _micros(high)

    def present(self) -> datetime:
        return _moment(min(self.lows))

    def leading(self) -> datetime:
        return _moment(max(self.highs))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class SiteClock:
    """What one site's devices read from :class:`SiteClocks`, off by a planted
    ``offset`` if the scenario gives it one."""

    def __init__(self, clocks: SiteClocks, site: str, offset: timedelta = timedelta(0)) -> None:
        self.clocks = clocks
        self.site = site
        self.offset = offset

    def now(self) -> datetime:
        return self.clocks.now_of(self.site) + self.offset

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        return True
