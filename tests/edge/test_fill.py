"""Fill level: geometry, filtering, reporting and events (pure, time passed in)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from edge.fill import FillSettings, FillTracker, FillUpdate, Geometry, MedianFilter, volume_table
from edge.protocol import FillEvent

BIN = Geometry(empty_mm=1500, full_mm=300, blind_zone_mm=250)


def test_distance_to_fill_percent() -> None:
    assert BIN.fill_pct(1500) == Decimal(0)
    assert BIN.fill_pct(900) == Decimal(50)
    assert BIN.fill_pct(300) == Decimal(100)
    assert BIN.fill_pct(100) == Decimal(100)  # clamped above
    assert BIN.fill_pct(2000) == Decimal(0)  # clamped below
    assert BIN.fill_pct(1100) == Decimal("33.33")


def test_volume_table_for_a_tapered_container() -> None:
    # Narrow at the bottom: the first half of the height holds a quarter of the volume.
    g = Geometry(1500, 300, 250, volume_table(((0, "0"), (600, "250"), (1200, "1000"))))
    assert g.fill_pct(900) == Decimal(25)  # level 600
    assert g.fill_pct(600) == Decimal("62.50")  # level 900: 250 + 375 litres
    with pytest.raises(ValueError, match="volume_table"):
        Geometry(1500, 300, 250, volume_table(((0, "0"), (600, "250"))))


def test_geometry_is_checked() -> None:
    with pytest.raises(ValueError, match="empty_mm > full_mm"):
        Geometry(300, 1500)


def test_median_filter_drops_spikes_but_follows_a_lasting_step() -> None:
    f = MedianFilter(window=5, outlier_mm=150, confirm=3)
    out = [f.push(mm) for mm in (1000, 1002, 998, 400, 1001, 999)]
    assert out == [1000, 1000, 1000, None, 1000, 1000]
    assert f.outliers == 1
    step = [f.push(mm) for mm in (1400, 1405, 1398, 1402)]
    assert step[:2] == [None, None]
    assert step[2] is not None
    assert 1395 <= step[2] <= 1405


def settings(**kw: object) -> FillSettings:
    base: dict[str, object] = {
        "geometry": BIN,
        "report_change_pct": Decimal(5),
        "report_interval_s": 600.0,
        "emptied_confirm": 2,
    }
    base.update(kw)
    return FillSettings(**base)  # type: ignore[arg-type]


def run(
    tracker: FillTracker, samples: Sequence[int | None], start: float = 0.0
) -> list[FillUpdate]:
    out: list[FillUpdate] = []
    for i, mm in enumerate(samples):
        out += tracker.feed(mm, start + i)
    return out


def test_reports_on_change_and_on_interval() -> None:
    t = FillTracker(settings())
    first = run(t, [1500, 1500, 1490])
    assert [u.fill_pct for u in first] == [Decimal(0)]
    assert run(t, [1480, 1470], start=3) == []  # below the 5 % change threshold
    changed = run(t, [1400, 1400, 1400], start=5)
    assert changed
    assert changed[-1].fill_pct >= Decimal(5)
    assert t.tick(700) != []  # the report interval passed
    assert t.tick(701) == []


def test_full_has_hysteresis() -> None:
    t = FillTracker(settings(full_pct=Decimal(90), hysteresis_pct=Decimal(10)))
    events = [u.event for u in run(t, [1500] * 3 + [400] * 4 + [450] * 3 + [400] * 3)]
    assert events.count(FillEvent.FULL) == 1  # 91.67 %, dips to 87.5 %, back: still one
    run(t, [700] * 4, start=20)  # 66.67 %: re-armed
    again = [u.event for u in run(t, [420] * 4, start=30)]
    assert FillEvent.FULL in again


def test_a_pickup_is_a_sharp_lasting_drop_and_a_transient_is_not() -> None:
    t = FillTracker(settings())
    run(t, [500] * 5)  # 83 %
    transient = run(t, [1400, 1400, 500, 500, 500], start=5)  # a bag swinging past
    assert FillEvent.EMPTIED not in [u.event for u in transient]
    pickup = run(t, [1450] * 8, start=10)
    assert [u.event for u in pickup].count(FillEvent.EMPTIED) == 1
    (emptied,) = [u for u in pickup if u.event is FillEvent.EMPTIED]
    assert emptied.fill_pct < Decimal(10)


def test_slow_settling_is_not_a_pickup() -> None:
    t = FillTracker(settings(emptied_window_s=60))
    samples = list(range(500, 1500))  # 83 % sinking to 0 over 1000 s: 5 % a minute
    assert FillEvent.EMPTIED not in [u.event for u in run(t, samples)]


def test_overflow_and_blind_zone() -> None:
    t = FillTracker(settings())
    run(t, [800] * 4)
    over = run(t, [200] * 4, start=4)  # inside the blind zone: reads as the zone's edge
    assert FillEvent.OVERFLOW in [u.event for u in over]
    assert over[-1].fill_pct == Decimal(100)


def test_no_echo_and_silence_are_sensor_faults_once() -> None:
    t = FillTracker(settings(fault_samples=3, silence_fault_s=30))
    run(t, [900] * 3)
    faults = run(t, [None] * 6, start=3)
    assert [u.event for u in faults] == [FillEvent.SENSOR_FAULT]
    run(t, [900] * 2, start=10)
    assert not t.faulted
    assert t.tick(20) == []
    assert [u.event for u in t.tick(45)] == [FillEvent.SENSOR_FAULT]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, -(10**9), True, 12.5])
def test_a_value_that_is_not_a_distance_counts_as_no_echo(value: object) -> None:
    t = FillTracker(settings(fault_samples=3))
    run(t, [900] * 3)
    faults = run(t, [value] * 3, start=3)  # type: ignore[list-item]
    assert [u.event for u in faults] == [FillEvent.SENSOR_FAULT]
    assert t.rejected == 3
    run(t, [900] * 2, start=6)
    assert not t.faulted
