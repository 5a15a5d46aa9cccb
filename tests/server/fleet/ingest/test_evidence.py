"""Chain continuity and the other ingest channels, against a real ledger."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import (
    Alarm,
    AlarmState,
    Channel,
    ConfigReported,
    FillEvent,
    Health,
    Status,
    encode,
    format_ts,
)
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.alarms import AlarmRecord
from server.ledger.devices import DeviceConfig
from server.ledger.flags import TicketFlag, open_flags
from server.ledger.models import DeadLetter, DeviceState, Ticket
from server.ledger.telemetry import FillRollup
from tests.support.builders import FakeDevice, fake_device, register
from tests.support.ingest import NOW, acks_of, count, inbound


def flags(sessions: sessionmaker[Session]) -> list[tuple[int, str, bool]]:
    with sessions() as s:
        rows = s.execute(
            select(TicketFlag.seq, TicketFlag.code, TicketFlag.cleared_at).order_by(
                TicketFlag.seq, TicketFlag.id
            )
        ).all()
    return [(seq, code, cleared is None) for seq, code, cleared in rows]


def active_alarms(sessions: sessionmaker[Session]) -> dict[tuple[str, str], AlarmRecord]:
    with sessions() as s:
        rows = s.scalars(select(AlarmRecord).where(AlarmRecord.state != "cleared")).all()
    return {(r.code, r.subject): r for r in rows}


def test_a_gap_is_flagged_and_closed_when_the_predecessor_proves_the_link(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    w1, w2, w3 = dev.weigh("1"), dev.weigh("2"), dev.weigh("3")
    handler.handle_batch([inbound(dev.device_id, encode(w)) for w in (w1, w3)])
    assert flags(sessions) == [(3, "chain_gap", True)]
    with sessions() as s:
        ids = dict(s.execute(select(Ticket.seq, Ticket.id)).all())
        assert open_flags(s, ids.values()) == {ids[3]: ["chain_gap"]}
    handler.handle_batch([inbound(dev.device_id, encode(w2))])
    assert flags(sessions) == [(3, "chain_gap", False)]
    with sessions() as s:
        assert open_flags(s, [ids[3]]) == {}


def test_a_fork_flags_the_ticket_whose_link_does_not_match(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    w1, w2 = dev.weigh("1"), dev.weigh("2")
    # A second journal with the same key (a restored backup, a tampered copy): its
    # seq 3 links to a seq 2 the ledger has never seen.
    other = fake_device(tmp_path / "other", dev.device_id)
    other.key = dev.key
    other.journal._signer = dev.key
    other.weigh("9"), other.weigh("8")
    forked3 = other.weigh("7")
    handler.handle_batch([inbound(dev.device_id, encode(w)) for w in (w1, w2)])
    out = handler.handle_batch([inbound(dev.device_id, encode(forked3))])
    assert acks_of(out) == [(3, "accepted", None)]
    assert flags(sessions) == [(3, "chain_fork", True)]
    with sessions() as s:
        assert s.scalar(select(Ticket.chain_ok).where(Ticket.seq == 3)) is False


def test_status_health_alarm_and_config_reports_drive_alarms(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions, clock=lambda: NOW)
    d = dev.device_id

    def msg(channel: Channel, payload: object) -> Inbound:
        if not isinstance(payload, ConfigReported):
            payload = dev.seal(payload)  # type: ignore[type-var]
        return inbound(d, encode(payload), channel)  # type: ignore[arg-type]

    offline = encode(dev.seal(Status(d, False, "boot-1", format_ts(NOW), seq=1)))
    handler.handle_batch([inbound(d, offline, Channel.STATUS)])
    assert ("device_offline", d) in active_alarms(sessions)
    skewed = NOW + timedelta(minutes=20)
    health = Health(
        device_id=d,
        boot_id="boot-1",
        ts=format_ts(skewed),
        time_synced=False,
        mono_ms=1,
        uptime_s=60,
        outbox_depth=500,
        oldest_unacked_s=3600,
        reconnects=2,
        serial_errors=0,
        seq=1,
    )
    raised = Alarm(
        d, "boot-1", format_ts(NOW), "journal_full", AlarmState.RAISED, "disk", "critical", seq=1
    )
    rejected = dev.report(3, False, "settings.colour: cannot be changed remotely")
    handler.handle_batch(
        [
            msg(Channel.HEALTH, health),
            msg(Channel.ALARM, raised),
            msg(Channel.CONFIG_REPORTED, rejected),
        ]
    )
    alarms = active_alarms(sessions)
    assert set(alarms) == {
        ("device_offline", d),  # health does not clear a will; only a birth does
        ("clock_drift", d),
        ("outbox_backlog", d),
        ("device:journal_full", d),
        ("config_rejected", d),
    }
    assert alarms[("device:journal_full", d)].severity == "critical"
    assert alarms[("device:journal_full", d)].source == "device"
    # The same condition again (as after a reconnect: a new seq): deduplicated, counted;
    # the very same message delivered again changes nothing.
    handler.handle_batch([msg(Channel.ALARM, replace(raised, seq=2))])
    handler.handle_batch([msg(Channel.ALARM, replace(raised, seq=2))])
    assert active_alarms(sessions)[("device:journal_full", d)].occurrences == 2
    online = encode(dev.seal(Status(d, True, "boot-2", format_ts(NOW), seq=2)))
    cleared = Alarm(d, "boot-1", format_ts(NOW), "journal_full", AlarmState.CLEARED, "ok", seq=3)
    applied = dev.report(4, True)
    handler.handle_batch(
        [
            inbound(d, online, Channel.STATUS),
            msg(Channel.ALARM, cleared),
            msg(Channel.CONFIG_REPORTED, applied),
        ]
    )
    assert set(active_alarms(sessions)) == {("outbox_backlog", d)}
    with sessions() as s:
        config = s.get(DeviceConfig, d)
        state = s.get(DeviceState, d)
    assert config is not None
    assert (config.reported_revision, config.reported_applied) == (4, True)
    assert state is not None
    assert state.online is True
    assert state.outbox_depth == 500
    assert count(sessions, DeadLetter) == 0


def fill(
    dev: FakeDevice, pct: str, event: FillEvent | None = None, temp: str | None = None
) -> bytes:
    dev.clock.advance(60)
    return encode(
        dev.journal.record_fill(
            container_id="ct-9", distance_mm=1000, fill_pct=pct, event=event, temperature_c=temp
        )
    )


def test_container_alarms_and_hourly_rollups(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path, "ct-almaty-09")
    register(sessions, dev)
    handler = IngestHandler(sessions)
    d = dev.device_id
    readings = [
        fill(dev, "40"),
        fill(dev, "95", FillEvent.FULL),
        fill(dev, "99", FillEvent.OVERFLOW, temp="71.5"),
    ]
    handler.handle_batch([inbound(d, r, Channel.FILL) for r in readings])
    assert set(active_alarms(sessions)) == {
        ("container_full", "ct-9"),
        ("container_overflow", "ct-9"),
        ("container_heat", "ct-9"),
    }
    handler.handle_batch([inbound(d, fill(dev, "2", FillEvent.EMPTIED, temp="20"), Channel.FILL)])
    assert active_alarms(sessions) == {}
    with sessions() as s:
        rollups = s.scalars(select(FillRollup)).all()
    assert sum(r.samples for r in rollups) == 4
    assert sum(r.sum_centi for r in rollups) == (40 + 95 + 99 + 2) * 100
    assert min(r.min_centi for r in rollups) == 200
    assert max(r.max_centi for r in rollups) == 9900


def test_text_a_database_cannot_hold_is_stored_safely_and_nothing_crashes(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    d = dev.device_id
    nul = dev.seal(Alarm(d, "boot-1", format_ts(NOW), "x", AlarmState.RAISED, "bad\x00byte", seq=1))
    handler.handle_batch([inbound(d, encode(nul), Channel.ALARM)])
    assert active_alarms(sessions)[("device:x", d)].message == "bad\ufffdbyte"


def test_a_dead_letter_is_reprocessed_once_its_cause_is_fixed(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev, approve=False)
    handler = IngestHandler(sessions)
    w = dev.weigh("321")
    out = handler.handle_batch([inbound(dev.device_id, encode(w))])
    assert acks_of(out)[0][1] == "rejected"
    with sessions() as s:
        (dl_id,) = s.scalars(select(DeadLetter.id)).all()
    # Still pending: re-processing keeps the one dead letter, with the fresh reason.
    assert handler.reprocess([dl_id]).outcomes == ["rejected"]
    assert count(sessions, DeadLetter) == 1
    register(sessions, dev)  # approve
    result = handler.reprocess([dl_id])
    assert result.outcomes == ["accepted"]
    assert acks_of(result.acks) == [(1, "accepted", None)]
    with sessions() as s:
        row = s.get(DeadLetter, dl_id)
        assert row is not None
        assert row.status == "resolved"
    assert count(sessions, Ticket) == 1
    assert handler.reprocess([dl_id]).outcomes == []  # resolved ones are left alone
