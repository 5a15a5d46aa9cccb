"""Sweeps (stale devices, scale certificates) and the operator's acknowledge/clear."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, encode, format_ts
from server.fleet.alarms import (
    AlarmError,
    AlarmRules,
    acknowledge,
    clear,
    list_alarms,
    sweep,
)
from server.fleet.ingest.handler import IngestHandler
from server.fleet.registry import register_scale
from tests.support.builders import fake_device, register
from tests.support.ingest import NOW, inbound


def test_sweep_raises_stale_and_certificate_alarms_once_and_ingest_clears_them(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    with sessions.begin() as s:
        register_scale(
            s,
            "s-old",
            device_id=dev.device_id,
            certificate_no="KZ-1",
            verified_until=date(2026, 2, 1),
        )
        register_scale(
            s,
            "s-soon",
            device_id=dev.device_id,
            certificate_no="KZ-2",
            verified_until=date(2026, 3, 20),
        )
        register_scale(
            s,
            "s-ok",
            device_id=dev.device_id,
            certificate_no="KZ-3",
            verified_until=date(2027, 1, 1),
        )
    handler = IngestHandler(sessions)
    handler.handle_batch([inbound(dev.device_id, encode(dev.weigh("5")))])
    rules = AlarmRules(stale_after_s=600, expiring_days=30)
    for _ in range(2):  # a second sweep deduplicates
        with sessions.begin() as s:
            result = sweep(s, NOW + timedelta(hours=1), rules)
    assert (result.stale, result.scales_expired, result.scales_expiring) == (1, 1, 1)
    with sessions() as s:
        active = {(a.code, a.subject): a for a in list_alarms(s, active_only=True)}
    assert set(active) == {
        ("device_stale", dev.device_id),
        ("scale_verification_expired", "s-old"),
        ("scale_verification_expiring", "s-soon"),
    }
    assert active[("device_stale", dev.device_id)].occurrences == 2
    assert active[("scale_verification_expired", "s-old")].severity == "critical"
    # The device speaks again; the old scale gets a new certificate.
    status = encode(dev.status(True, seq=2, ts=format_ts(NOW)))
    handler.handle_batch([inbound(dev.device_id, status, Channel.STATUS)])
    with sessions.begin() as s:
        register_scale(
            s,
            "s-old",
            device_id=dev.device_id,
            certificate_no="KZ-9",
            verified_until=date(2027, 2, 1),
        )
        sweep(s, NOW + timedelta(minutes=5), rules)
    with sessions() as s:
        assert {a.code for a in list_alarms(s, active_only=True)} == {"scale_verification_expiring"}


def test_operators_acknowledge_then_clear_with_their_name(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    offline = encode(dev.status(False))
    IngestHandler(sessions).handle_batch([inbound(dev.device_id, offline, Channel.STATUS)])
    with sessions() as s:
        (alarm,) = list_alarms(s, active_only=True)
    with sessions.begin() as s:
        acknowledge(s, alarm.id, by="operator-7", now=NOW)
    with sessions.begin() as s, pytest.raises(AlarmError, match="acknowledged, not open"):
        acknowledge(s, alarm.id, by="operator-8")
    with sessions.begin() as s:
        done = clear(s, alarm.id, by="operator-8", now=NOW)
        assert (done.acknowledged_by, done.cleared_by, done.state) == (
            "operator-7",
            "operator-8",
            "cleared",
        )
    with sessions() as s:
        assert list_alarms(s, active_only=True) == []
        assert [a.state for a in list_alarms(s)] == ["cleared"]
