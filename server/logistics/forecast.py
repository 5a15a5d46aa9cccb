"""When a container will reach a threshold: an hour-of-week rate profile, shrunk
toward its category's, scaled by the recent pace, projected from the latest reading.

A container's hourly fill series (the ledger's ``fill_rollups``: the last level of
each UTC hour; NaN where no reading came) is turned into hourly increments; a drop of
more than :data:`DROP_PCT` is an emptying and a jump of more than :data:`JUMP_PCT` a
glitch (a lid left open), and neither counts. The mean increment per local
hour-of-week (168 slots) over the container's history — the weeks before the last
emptying and the days since — is its own weekly rhythm. With four or five weeks a
slot has only a few observations, so each slot is shrunk toward the category's shape
(the mean of its containers' normalised profiles) scaled to the container's own mean
rate, weighted by :data:`PRIOR_HOURS` pseudo-observations. The last
:data:`RECENT_HOURS` hours then scale the profile by how much faster or slower the
container has been filling than the profile says (shrunk toward 1 and bounded), and
the profile is walked forward from the latest reading until the threshold.

:func:`naive_hours` is the baseline the method is measured against: the last day's
rate (since the last emptying, if later) extrapolated linearly. ``make
bench-logistics`` measures both on simulated containers with known truth
(``docs/logistics.md`` has the figures).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from server.money.amounts import LOCAL_TZ

Floats = NDArray[np.float64]

WEEK: Final = 168
DROP_PCT: Final = 10.0
"""A fall larger than this within an hour is an emptying, not a rate."""
JUMP_PCT: Final = 30.0
"""A rise larger than this within an hour is a glitch (lid open, a bag on the sensor)."""
PRIOR_HOURS: Final = 4.0
"""Weight of the category shape in each hour-of-week slot, in observations."""
RECENT_HOURS: Final = 48
PACE_PRIOR_HOURS: Final = 24.0
"""Weight of "the profile is right" against the recent pace, in hours of increments."""
PACE_BOUNDS: Final = (0.5, 2.0)
HORIZON_H: Final = 21 * 24
"""Beyond this a forecast says "not within" (inf)."""
DEFAULT_THRESHOLD: Final = 80.0


@dataclass(frozen=True, slots=True)
class Series:
    """One container's hourly fill levels: ``values[i]`` is the level at the end of the
    UTC hour ``start + i`` hours (percent; NaN: no reading that hour)."""

    container_id: str
    category: str
    start: datetime
    values: Floats

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=len(self.values))


@dataclass(frozen=True, slots=True)
class Forecast:
    container_id: str
    level: float | None
    """The latest reading (percent); None: no reading at all."""
    measured_at: datetime | None
    """When the latest reading was taken (end of its hour)."""
    rate_per_day: float
    """Expected fill over the next 24 hours, percent."""
    hours: float
    """From ``now`` to the threshold: 0 if already there, inf if not within the horizon
    or unknown."""
    path: tuple[float, ...]
    """The expected level for each of the next hours from the latest reading (for the
    chart), up to the threshold or 72 hours, whichever is later."""

    def at(self, now: datetime) -> datetime | None:
        """When the threshold is reached, or None if not within the horizon."""
        return None if math.isinf(self.hours) else now + timedelta(hours=self.hours)


def _hour_of_week(start: datetime, n: int) -> NDArray[np.int64]:
    local = start.astimezone(LOCAL_TZ)
    first = local.weekday() * 24 + local.hour
    return np.asarray((first + np.arange(n)) % WEEK, dtype=np.int64)


def increments(values: Floats) -> Floats:
    """Hourly increments with emptyings, glitches and gaps as NaN."""
    d = np.diff(values, prepend=np.nan)
    d[(d < -DROP_PCT) | (d > JUMP_PCT)] = np.nan
    return d


def _profile(d: Floats, how: NDArray[np.int64]) -> tuple[Floats, Floats, float]:
    ok = ~np.isnan(d)
    counts = np.bincount(how[ok], minlength=WEEK).astype(np.float64)
    sums = np.bincount(how[ok], weights=d[ok], minlength=WEEK)
    mean = float(sums.sum() / counts.sum()) if counts.sum() else 0.0
    own = np.divide(sums, counts, out=np.zeros(WEEK), where=counts > 0)
    return own, counts, max(mean, 0.0)


def category_shapes(series: Sequence[Series]) -> dict[str, Floats]:
    """Per category: the mean of its containers' hour-of-week profiles, each
    normalised to a mean of 1 (slots a container never saw count as its mean)."""
    sums: dict[str, Floats] = defaultdict(lambda: np.zeros(WEEK))
    n: dict[str, int] = defaultdict(int)
    for s in series:
        d = increments(s.values)
        own, counts, mean = _profile(d, _hour_of_week(s.start, len(d)))
        if mean <= 0 or counts.sum() < WEEK:
            continue
        sums[s.category] += np.where(counts > 0, own, mean) / mean
        n[s.category] += 1
    return {c: sums[c] / n[c] for c in sums}


def crossing(level: float, ahead: Floats, *, threshold: float, since: float) -> tuple[float, int]:
    """Hours until ``level`` plus the expected hourly increments ``ahead`` (each >= 0)
    reaches ``threshold``, less the ``since`` hours already passed since the reading
    (0 if already there, inf beyond ``ahead``), and the index of the crossing hour."""
    path = level + np.cumsum(ahead)
    idx = int(np.searchsorted(path, threshold))
    if level >= threshold:
        return 0.0, idx
    if idx >= len(ahead):
        return math.inf, idx
    before = level if idx == 0 else float(path[idx - 1])
    step = float(ahead[idx])
    return max(idx + ((threshold - before) / step if step > 0 else 1.0) - since, 0.0), idx


def forecast(
    s: Series,
    *,
    now: datetime,
    threshold: float = DEFAULT_THRESHOLD,
    shape: Floats | None = None,
) -> Forecast:
    values = s.values
    valid = np.flatnonzero(~np.isnan(values))
    if valid.size == 0:
        return Forecast(s.container_id, None, None, 0.0, math.inf, ())
    last = int(valid[-1])
    level = float(np.clip(values[last], 0.0, 120.0))
    measured_at = s.start + timedelta(hours=last + 1)
    d = increments(values)
    how = _hour_of_week(s.start, len(values))
    own, counts, mean = _profile(d, how)
    prior = mean * (shape if shape is not None else np.ones(WEEK))
    rate = np.maximum((counts * own + PRIOR_HOURS * prior) / (counts + PRIOR_HOURS), 0.0)
    recent = slice(max(0, last + 1 - RECENT_HOURS), last + 1)
    seen = ~np.isnan(d[recent])
    actual = float(np.nansum(d[recent]))
    expected = float(rate[how[recent]][seen].sum())
    pace_prior = PACE_PRIOR_HOURS * mean
    pace = (actual + pace_prior) / (expected + pace_prior) if expected + pace_prior > 0 else 1.0
    rate = rate * float(np.clip(pace, *PACE_BOUNDS))
    ahead = rate[(how[last] + 1 + np.arange(HORIZON_H)) % WEEK]
    path = level + np.cumsum(ahead)
    since = (now - measured_at).total_seconds() / 3600
    hours, idx = crossing(level, ahead, threshold=threshold, since=since)
    shown = min(max(72, idx + 2), HORIZON_H)
    return Forecast(
        s.container_id,
        level,
        measured_at,
        float(ahead[:24].sum()),
        hours,
        tuple(float(x) for x in np.minimum(path[:shown], 120.0)),
    )


def forecast_all(
    series: Sequence[Series], *, now: datetime, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, Forecast]:
    """Every container's forecast, the category shapes estimated from the same series."""
    shapes = category_shapes(series)
    return {
        s.container_id: forecast(s, now=now, threshold=threshold, shape=shapes.get(s.category))
        for s in series
    }


def naive_hours(s: Series, *, now: datetime, threshold: float = DEFAULT_THRESHOLD) -> float:
    """The baseline: the rate over the last 24 hours (or since the last emptying, if
    later, but at least 3 hours) extrapolated linearly; inf if it is not rising."""
    values = s.values
    valid = np.flatnonzero(~np.isnan(values))
    if valid.size == 0:
        return math.inf
    last = int(valid[-1])
    level = float(values[last])
    if level >= threshold:
        return 0.0
    window = values[max(0, last - 24) : last + 1]
    drops = np.flatnonzero(np.diff(window) < -DROP_PCT)
    if drops.size:
        window = window[int(drops[-1]) + 1 :]
    seen = np.flatnonzero(~np.isnan(window))
    if seen.size < 2 or seen[-1] - seen[0] < 3:
        return math.inf
    rate = (float(window[seen[-1]]) - float(window[seen[0]])) / float(seen[-1] - seen[0])
    if rate <= 0:
        return math.inf
    since = (now - (s.start + timedelta(hours=last + 1))).total_seconds() / 3600
    return max((threshold - level) / rate - since, 0.0)
