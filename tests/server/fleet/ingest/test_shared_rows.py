"""Rows every worker touches (device and container state, hourly rollups) merge, never clash."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.ledger.models import ContainerState, DeviceState, Ticket
from server.ledger.telemetry import FillRollup
from tests.support.builders import fake_device, register
from tests.support.ingest import inbound

HOUR = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def test_another_workers_uncommitted_rows_are_merged_not_a_clash(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    reading = dev.journal.record_fill(container_id="ct-1", distance_mm=900, fill_pct="40")
    message = Inbound(topic(dev.device_id, Channel.FILL), encode(reading), HOUR.replace(minute=5))
    outcome: list[object] = []
    # Another worker's transaction creates the same rows and has not committed yet.
    other = sessions()
    other.begin()
    other.add(DeviceState(device_id=dev.device_id, last_seen_at=HOUR.replace(minute=1)))
    other.add(
        ContainerState(
            container_id="ct-1",
            device_id=dev.device_id,
            measured_at=HOUR,
            fill_pct=Decimal("10"),
            distance_mm=1500,
        )
    )
    other.add(
        FillRollup(
            container_id="ct-1",
            hour=HOUR,
            device_id=dev.device_id,
            samples=2,
            sum_centi=3000,
            min_centi=1000,
            max_centi=2000,
            last_centi=1000,
            last_at=HOUR,
        )
    )
    other.flush()

    def work() -> None:
        try:
            outcome.append(handler.process([message]).outcomes)
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(0.5)  # blocked on the other transaction's rows (or its write lock)
    other.commit()
    other.close()
    worker.join(30)
    assert outcome == [["accepted"]]
    with sessions() as s:
        rollup = s.scalars(select(FillRollup)).one()
        container = s.get(ContainerState, "ct-1")
        state = s.get(DeviceState, dev.device_id)
    assert (rollup.samples, rollup.sum_centi, rollup.min_centi, rollup.max_centi) == (
        3,
        7000,
        1000,
        4000,
    )
    assert rollup.last_centi == 4000  # the reading is later than the other worker's last
    assert container is not None
    assert container.fill_pct == Decimal("40")
    assert state is not None
    assert state.last_seen_at == HOUR.replace(minute=5)


def test_rollups_add_up_over_batches_and_keep_the_latest(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    handler = IngestHandler(sessions)
    readings = []
    for pct in ("10", "55.5", "30"):
        dev.clock.advance(60)
        readings.append(dev.journal.record_fill(container_id="ct-2", distance_mm=800, fill_pct=pct))
    late = [Inbound(topic(dev.device_id, Channel.FILL), encode(r), HOUR) for r in readings]
    # The latest reading first, then the two older ones in a later batch.
    handler.handle_batch(late[2:])
    handler.handle_batch(late[:2])
    with sessions() as s:
        rollup = s.scalars(select(FillRollup)).one()
        container = s.get(ContainerState, "ct-2")
    assert (rollup.samples, rollup.sum_centi, rollup.min_centi, rollup.max_centi) == (
        3,
        9550,
        1000,
        5550,
    )
    assert rollup.last_centi == 3000
    assert container is not None
    assert container.fill_pct == Decimal("30")


def test_a_ticket_raced_in_by_another_worker_is_retried_then_acked_as_a_duplicate(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    w = dev.weigh("7")
    message = Inbound(topic(dev.device_id, Channel.WEIGHING), encode(w), HOUR)
    # Another worker stores the same record and commits only once this one has
    # looked it up (PostgreSQL; SQLite's write lock orders the two instead).
    other = sessions()
    other.begin()
    other.add(
        Ticket(
            device_id=w.device_id,
            seq=w.seq,
            event_id=w.event_id,
            boot_id=w.boot_id,
            weighed_at=w.weighed_at,
            time_synced=w.time_synced,
            mono_ms=w.mono_ms,
            site_id=w.site_id,
            scale_id=w.scale_id,
            category=w.category,
            badge=w.badge,
            gross_g=7000,
            tare_g=0,
            net_g=7000,
            unit=w.unit,
            raw=json.dumps(list(w.raw)),
            prev_hash=w.prev_hash,
            hash=w.hash,
            sig=w.sig,
            payload=message.payload,
            received_at=HOUR,
            chain_ok=True,
        )
    )
    other.flush()
    handler = IngestHandler(sessions)
    attempts: list[object] = []

    def work() -> None:
        for attempt in range(3):
            try:
                attempts.append(handler.process([message], attempt=attempt).outcomes)
                return
            except SQLAlchemyError as exc:  # what the subscriber retries
                attempts.append(type(exc))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(0.5)
    other.commit()
    other.close()
    worker.join(30)
    assert attempts[-1] == ["duplicate"]
    assert all(a is IntegrityError for a in attempts[:-1]), attempts
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)  # SQLite: no row locks
def test_a_batch_locks_its_device_rows_in_key_order_before_writing_any(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Two workers deadlocked when one batch wrote a device_state row (an alarm cleared
    mid-batch flushes the session) before locking the others in key order. Every row a
    batch writes is now locked by one sorted statement before the first write, on
    PostgreSQL; a weighing-only device's row (last seen) among them."""
    online = fake_device(tmp_path, "rp-lock-b")
    weighing = fake_device(tmp_path, "rp-lock-a")
    for dev in (online, weighing):
        register(sessions, dev)
    handler = IngestHandler(sessions)
    went_offline = encode(online.status(False, seq=1))
    assert handler.handle_batch([inbound(online.device_id, went_offline, Channel.STATUS)]) == []
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, sql: str, params: object, *rest: object) -> None:
        if "device_state" in sql:
            statements.append((" ".join(sql.split()), params))

    engine = sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        back = encode(online.status(True, seq=2))
        batch = [
            inbound(online.device_id, back, Channel.STATUS),  # clears device_offline
            inbound(weighing.device_id, encode(weighing.weigh()), Channel.WEIGHING),
        ]
        handler.handle_batch(batch)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    writes = [
        i
        for i, (sql, _) in enumerate(statements)
        if sql.startswith("UPDATE device_state") or "DO UPDATE" in sql
    ]
    locks = [i for i, (sql, _) in enumerate(statements) if sql.endswith("FOR UPDATE")]
    assert writes, statements
    assert len(locks) == 1, statements
    assert locks[0] < min(writes), statements
    locked = str(statements[locks[0]][1])
    assert online.device_id in locked
    assert weighing.device_id in locked
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1
        state = s.get(DeviceState, online.device_id)
        assert state is not None
        assert state.online is True
