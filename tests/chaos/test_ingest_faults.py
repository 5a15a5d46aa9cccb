"""Faults while devices publish: killed worker, broker restart, database and telemetry outages.

Afterwards nothing is lost (every device's journal is fully acked and the ledger holds
each record), nothing is duplicated (one ticket per (device, seq), by count and by
key), and every telemetry point is in the time-series server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.subscriber import Subscriber
from server.fleet.telemetry import InfluxWriter
from server.ledger.db import make_engine, migrate, session_factory
from server.ledger.models import DeadLetter, Ticket
from server.ledger.telemetry import TelemetrySpool
from tests.chaos.conftest import OUTAGE_S, RECORDS
from tests.support.devices import SimulatedDevice, wait_all_acked
from tests.support.fleet import wait_until
from tests.support.ingest import IngestProcess
from tests.support.services import Mosquitto, Postgres, VictoriaMetrics

DEVICES = 4


def counts(sessions: sessionmaker[Session], prefix: str = "") -> tuple[int, int, int]:
    """(tickets, distinct (device, seq), dead letters of devices named ``prefix…``).

    The session's broker also holds retained status messages of other tests' devices,
    which this ledger rightly dead-letters as unregistered; they are not counted.
    """
    with sessions() as s:
        tickets = s.scalar(select(func.count()).select_from(Ticket)) or 0
        distinct = s.scalar(
            select(func.count()).select_from(
                select(Ticket.device_id, Ticket.seq).distinct().subquery()
            )
        )
        dead = (
            s.scalar(
                select(func.count())
                .select_from(DeadLetter)
                .where(DeadLetter.device_id.startswith(prefix))
            )
            or 0
        )
    return int(tickets), int(distinct or 0), int(dead)


def fleet(
    tmp_path: Path, sessions: sessionmaker[Session], url: str, name: str
) -> list[SimulatedDevice]:
    devices = [
        SimulatedDevice(tmp_path / f"{name}-{i}", f"{name}-{i:02d}", url, ack_timeout_s=2)
        for i in range(DEVICES)
    ]
    for d in devices:
        d.register(sessions)
        d.start()
    return devices


def check_complete(
    sessions: sessionmaker[Session], devices: list[SimulatedDevice], timeout: float
) -> None:
    wait_all_acked(devices, timeout)
    prefix = devices[0].device_id.rsplit("-", 1)[0]
    with sessions() as s:
        reasons = [
            (d.topic, d.reason)
            for d in s.scalars(select(DeadLetter).where(DeadLetter.device_id.startswith(prefix)))
        ]
    assert reasons == []
    assert counts(sessions, prefix) == (DEVICES * RECORDS, DEVICES * RECORDS, 0)


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """One ledger engine is enough where the fault is not the database's."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def pg_ledger(postgres: Postgres) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = postgres.fresh_database()
    engine = make_engine(url)
    yield url, session_factory(engine)
    engine.dispose()


def test_sigkill_of_a_worker_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, mosquitto: Mosquitto, pg_ledger: tuple[str, sessionmaker[Session]]
) -> None:
    url, sessions = pg_ledger
    workers = [
        IngestProcess(
            tmp_path / "ingest", f"chaos-kill-{i}", url, mosquitto.url, "chaos-kill"
        ).start()
        for i in range(2)
    ]
    devices = fleet(tmp_path, sessions, mosquitto.url, "rp-kill")
    try:
        time.sleep(2)  # workers subscribed
        for d in devices:
            d.record(weighings=RECORDS)
        wait_until(lambda: counts(sessions)[0] >= DEVICES * RECORDS // 4, 60, "stream under way")
        workers[0].kill()
        time.sleep(1)
        workers[0].start()  # as systemd would: same client id, its share comes back
        check_complete(sessions, devices, 120)
    finally:
        for d in devices:
            d.stop()
        for w in workers:
            w.stop()


def test_broker_restart_mid_stream_loses_and_duplicates_nothing(
    tmp_path: Path, sqlite_sessions: sessionmaker[Session]
) -> None:
    sessions = sqlite_sessions
    broker = Mosquitto(tmp_path / "mq").start()  # persistence off: the restart loses queues
    sub = Subscriber(IngestHandler(sessions), broker_url=broker.url, client_id="chaos-restart")
    sub.start()
    devices = fleet(tmp_path, sessions, broker.url, "rp-restart")
    try:
        assert sub.connected.wait(10)
        for d in devices:
            d.record(weighings=RECORDS)
        wait_until(lambda: counts(sessions)[0] >= 1, 60, "stream under way")
        broker.restart()
        check_complete(sessions, devices, 120)
    finally:
        for d in devices:
            d.stop()
        sub.stop()
        broker.stop()


def test_database_outage_holds_acks_until_the_ledger_is_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    pg = Postgres(durable=True).start()  # a crash must not lose committed rows
    try:
        url = pg.url()
        engine = make_engine(url)
        migrate(engine)
        sessions = session_factory(engine)
        sub = Subscriber(IngestHandler(sessions), broker_url=mosquitto.url, client_id="chaos-pg")
        sub.start()
        devices = fleet(tmp_path, sessions, mosquitto.url, "rp-pgdown")
        try:
            assert sub.connected.wait(10)
            for d in devices:
                d.record(weighings=RECORDS // 2)
            wait_until(lambda: counts(sessions)[0] >= 1, 60, "stream under way")
            pg.halt()
            for d in devices:
                d.record(weighings=RECORDS - RECORDS // 2)
            time.sleep(OUTAGE_S)
            assert sub.db_errors > 0
            pg.resume()
            check_complete(sessions, devices, 120 + OUTAGE_S)
        finally:
            for d in devices:
                d.stop()
            sub.stop()
            engine.dispose()
    finally:
        pg.stop()


def test_influx_api_outage_loses_no_telemetry_point(
    tmp_path: Path, mosquitto: Mosquitto, sqlite_sessions: sessionmaker[Session]
) -> None:
    sessions = sqlite_sessions
    vm = VictoriaMetrics(tmp_path / "vm").start()
    writer = InfluxWriter(
        sessions,
        url=vm.url,
        token="",
        org="epr",
        bucket="telemetry",
        retry_after_s=3,
        poll_s=0.5,
        client_retry_time_s=2,
        error_backoff_s=0.5,
    ).start()
    handler = IngestHandler(sessions, telemetry=writer, metrics=writer.metrics)
    sub = Subscriber(handler, broker_url=mosquitto.url, client_id="chaos-vm")
    sub.start()
    devices = fleet(tmp_path, sessions, mosquitto.url, "ct-vmdown")
    fills = RECORDS * 3
    try:
        assert sub.connected.wait(10)
        for d in devices:
            d.record(fills=fills // 2)
        wait_until(lambda: writer.metrics.telemetry_points._value.get() > 0, 60, "points written")
        vm.stop()
        for d in devices:
            d.record(fills=fills - fills // 2)
        time.sleep(OUTAGE_S)
        wait_all_acked(devices, 60)  # ingest goes on; points wait in the spool
        vm.start()

        def spool() -> int:
            with sessions() as s:
                return int(s.scalar(select(func.count()).select_from(TelemetrySpool)) or 0)

        wait_until(lambda: spool() == 0, 60 + OUTAGE_S, "the spool drained")

        def stored() -> int:
            series = vm.points("fill_fill_pct")
            return sum(len(v) for k, v in series.items() if any(d == "device_id" for d, _ in k))

        wait_until(lambda: stored() == DEVICES * fills, 60, f"{DEVICES * fills} fill points")
    finally:
        for d in devices:
            d.stop()
        sub.stop()
        writer.close()
        vm.close()
