"""Scripted months and the fleet's clock."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from firmware_sim.timeline import FleetClock, Rhythm, SkewedClock, month_times
from server.money.amounts import LOCAL_TZ


def test_a_month_has_the_rhythm_of_a_working_week() -> None:
    times = month_times(random.Random(1), "2026-10", 3000)
    assert times == sorted(set(times))  # distinct, in order
    local = [t.astimezone(LOCAL_TZ) for t in times]
    assert all(t.year == 2026 and t.month == 10 for t in local)
    assert all(8 <= t.hour <= 18 for t in local)
    by_day = Counter(t.weekday() for t in local)
    # October 2026 has five Thursdays, Fridays and Saturdays, four of the other days.
    assert by_day[1] / 4 > 3 * by_day[6] / 4  # Tuesday against Sunday, per day
    hours = Counter(t.hour for t in local)
    assert hours[10] > 2 * hours[18]


def test_a_rhythm_without_traffic_is_refused() -> None:
    with pytest.raises(ValueError, match="weekday"):
        month_times(random.Random(1), "2026-10", 5, Rhythm(weekday=(0.0,) * 7))
    with pytest.raises(ValueError, match="do not fit"):
        month_times(random.Random(1), "2026-10", 10**9)


def test_the_fleet_clock_holds_flows_and_never_goes_back() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    clock = FleetClock(start)
    assert clock.now() == start
    clock.move_to(start + timedelta(hours=2))
    clock.move_to(start)  # earlier: ignored
    assert clock.now() == start + timedelta(hours=2)
    clock.run(1_000_000)
    later = clock.now()
    assert later >= start + timedelta(hours=2)
    skewed = SkewedClock(clock, timedelta(days=2))
    assert skewed.now() - clock.now() >= timedelta(days=2) - timedelta(minutes=5)
    assert skewed.synced()
