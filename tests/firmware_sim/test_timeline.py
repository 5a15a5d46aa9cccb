"""Scripted months and the fleet's clock."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from firmware_sim.timeline import (
    FleetClock,
    Rhythm,
    SharedTimes,
    SiteClock,
    SiteClocks,
    SkewedClock,
    month_times,
)
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


T0 = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)


def test_site_clocks_hold_each_site_at_its_delivery_within_the_window() -> None:
    clocks = SiteClocks(T0, T0 + 48 * H, H, {"a": T0 + 2 * H, "b": T0 + 10 * H, "c": None})
    assert clocks.present() == T0 + 2 * H  # the earliest delivery anyone has left
    assert clocks.may_start(T0 + 2 * H)
    assert not clocks.may_start(T0 + 10 * H)  # eight hours past the present
    clocks.hold("a", T0 + 2 * H)
    skewed = SiteClock(clocks, "a", timedelta(days=2))
    assert SiteClock(clocks, "a").now() == T0 + 2 * H
    assert skewed.now() == T0 + 2 * H + timedelta(days=2)
    assert SiteClock(clocks, "c").now() == T0 + 2 * H  # no deliveries: the present
    clocks.release("a", T0 + 30 * H)
    # Nobody has anything before b's delivery: the present moves to it, never back.
    assert clocks.present() == T0 + 10 * H
    assert SiteClock(clocks, "a").now() == T0 + 10 * H  # idle: follows the present
    clocks.hold("b", T0 + 10 * H)
    assert clocks.leading() == T0 + 10 * H
    clocks.release("b", None)
    assert clocks.present() == T0 + 30 * H
    clocks.release("a", None)
    assert clocks.present() == clocks.leading() == T0 + 48 * H  # the month is over


def test_a_site_never_goes_back_and_the_window_is_positive() -> None:
    clocks = SiteClocks(T0, T0 + 48 * H, H, {"a": T0 + 5 * H})
    clocks.hold("a", T0 + 5 * H)
    clocks.release("a", T0 + 3 * H)  # a script out of order is played at the held time
    assert clocks.present() == T0 + 5 * H
    clocks.hold("a", T0 + 3 * H)
    assert SiteClock(clocks, "a").now() == T0 + 5 * H
    with pytest.raises(ValueError, match="positive"):
        SiteClocks(T0, T0 + H, timedelta(0), {})


def test_the_window_holds_across_shards_of_a_fleet() -> None:
    """Two processes' site clocks share where each shard is: a shard whose sites are
    all ahead waits for the other's, and the server reads the leading edge of both."""
    shared = SharedTimes([0, 0], [0, 0])
    shared.publish(1, T0 + 2 * H, T0)  # what the parent posts before shard 1 starts
    ahead = SiteClocks(T0, T0 + 48 * H, H, {"a": T0 + 5 * H}, shared, 0)
    assert ahead.present() == T0 + 2 * H  # held back by the other shard's delivery
    assert not ahead.may_start(T0 + 5 * H)
    behind = SiteClocks(T0, T0 + 48 * H, H, {"b": T0 + 2 * H}, shared, 1)
    behind.hold("b", T0 + 2 * H)
    assert ahead.leading() == T0 + 2 * H
    behind.release("b", None)
    assert ahead.may_start(T0 + 5 * H)  # shard 1 has nothing left before it
    assert shared.present() == T0 + 5 * H
