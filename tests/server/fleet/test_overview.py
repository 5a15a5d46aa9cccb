"""Fleet availability from the latest device state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.fleet.overview import Availability, _health, availability
from server.ledger.models import DeviceState

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def state(online: bool | None, seen_s_ago: int | None) -> DeviceState:
    seen = None if seen_s_ago is None else NOW - timedelta(seconds=seen_s_ago)
    return DeviceState(device_id="d", online=online, last_seen_at=seen)


def test_availability() -> None:
    assert availability(None, NOW, 600) is Availability.UNKNOWN
    assert availability(state(None, 5), NOW, 600) is Availability.UNKNOWN
    assert availability(state(True, 5), NOW, 600) is Availability.ONLINE
    assert availability(state(True, 601), NOW, 600) is Availability.STALE
    assert availability(state(True, None), NOW, 600) is Availability.STALE
    assert availability(state(False, 5), NOW, 600) is Availability.OFFLINE


def test_health_keeps_only_integer_fields() -> None:
    assert _health('{"outbox_depth": 3, "reconnects": true, "uptime_s": "9", "x": 1}') == {
        "outbox_depth": 3
    }
    assert _health("not json") == {}
    assert _health("[1, 2]") == {}
    assert _health(None) == {}
