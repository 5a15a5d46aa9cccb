"""Telemetry: the exact line protocol, and delivery through a real InfluxDB-API server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import FillEvent, FillReading, Health, encode, format_ts
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.fleet.metrics import IngestMetrics
from server.fleet.telemetry import (
    InfluxWriter,
    epoch_ms,
    fill_line,
    health_line,
    weighing_line,
)
from server.ledger.telemetry import TelemetrySpool
from tests.support.builders import fake_device, register
from tests.support.fleet import wait_until
from tests.support.services import VictoriaMetrics

TS = "2026-11-29T10:00:00.123Z"


def test_lines_follow_the_published_schema_with_device_time_in_ms() -> None:
    reading = FillReading(
        device_id="ct-1",
        boot_id="b",
        seq=4,
        ts=TS,
        time_synced=True,
        mono_ms=1,
        container_id="c 7",
        distance_mm=812,
        fill_pct="61.5",
        event=FillEvent.FULL,
        temperature_c="-3.5",
    )
    ms = epoch_ms(TS)
    assert ms == int(datetime(2026, 11, 29, 10, 0, 0, 123000, tzinfo=UTC).timestamp() * 1000)
    assert fill_line(reading, "site,1") == (
        "fill,container_id=c\\ 7,device_id=ct-1,site_id=site\\,1"
        f' fill_pct=61.5,distance_mm=812i,temperature_c=-3.5,event="full" {ms}'
    )
    health = Health("rp-1", "b", TS, True, 1, 60, 3, 0, 1, 0, cpu_temp_c="48.5")
    assert health_line(health, "s1") == (
        "health,device_id=rp-1,site_id=s1 uptime_s=60i,outbox_depth=3i,oldest_unacked_s=0i,"
        f"reconnects=1i,serial_errors=0i,cpu_temp_c=48.5 {ms}"
    )


def test_weighing_line_carries_decimal_strings_unchanged(tmp_path: Path) -> None:
    dev = fake_device(tmp_path)
    w = dev.weigh("1200.505", tare_kg="10.25")
    line = weighing_line(w)
    assert line.startswith(
        "weighing,category=tyres,device_id=rp-test-01,scale_id=s1,site_id=almaty-rp-01 "
        "net_kg=1200.505,gross_kg=1210.755,tare_kg=10.25,seq=1i "
    )


@pytest.fixture
def writer(sessions: sessionmaker[Session], victoria: VictoriaMetrics) -> Iterator[InfluxWriter]:
    w = InfluxWriter(
        sessions,
        url=victoria.url,
        token="",
        org="epr",
        bucket="telemetry",
        metrics=IngestMetrics(),
        retry_after_s=2,
        poll_s=0.2,
        client_retry_time_s=1,
        error_backoff_s=0.2,
    ).start()
    yield w
    w.close()


def spool_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(TelemetrySpool)) or 0)


def test_points_reach_the_server_and_survive_its_outage(
    tmp_path: Path,
    sessions: sessionmaker[Session],
    victoria: VictoriaMetrics,
    writer: InfluxWriter,
    request: pytest.FixtureRequest,
) -> None:
    # Device ids per test run: the server is shared by the session's tests.
    device_id = f"ct-tel-{request.node.callspec.id}"
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    dev = fake_device(tmp_path, device_id, start=start)
    register(sessions, dev)
    handler = IngestHandler(sessions, telemetry=writer, metrics=writer.metrics)

    health_seq = itertools.count(1)

    def batch(n: int) -> list[Inbound]:
        msgs = []
        for i in range(n):
            dev.clock.advance(7)
            r = dev.journal.record_fill(
                container_id=f"{device_id}-c", distance_mm=1000 - i, fill_pct=f"{i % 100}.5"
            )
            msgs.append(Inbound(f"epr/v1/{device_id}/fill", encode(r), datetime.now(UTC)))
        health = dev.seal(
            Health(
                device_id,
                "boot-1",
                format_ts(dev.clock.now()),
                True,
                1,
                5,
                0,
                0,
                0,
                0,
                seq=next(health_seq),
            )
        )
        msgs.append(Inbound(f"epr/v1/{device_id}/health", encode(health), datetime.now(UTC)))
        return msgs

    handler.handle_batch(batch(50))
    wait_until(lambda: spool_rows(sessions) == 0, 20, "the first batch confirmed")
    victoria.stop()
    try:
        handler.handle_batch(batch(30))
        handler.handle_batch(batch(20))
        # Committed with the ingest batch; kept while the server is down.
        assert spool_rows(sessions) == 2
        wait_until(lambda: writer.metrics.telemetry_errors._value.get() >= 1, 20, "a failed write")
        assert spool_rows(sessions) == 2
    finally:
        victoria.start()
    wait_until(lambda: spool_rows(sessions) == 0, 30, "the spool drained after the outage")

    def fill_points() -> int:
        series = victoria.points("fill_fill_pct")
        return sum(len(v) for k, v in series.items() if ("device_id", device_id) in k)

    wait_until(lambda: fill_points() == 100, 30, "all 100 fill points in the server")
    (labels, values), *_ = [
        (k, v)
        for k, v in victoria.points("fill_distance_mm").items()
        if ("device_id", device_id) in k
    ]
    assert {
        ("container_id", f"{device_id}-c"),
        ("device_id", device_id),
        ("site_id", "almaty-rp-01"),
    } <= set(labels)
    assert sorted(values.values())[0] == 1000 - 49
    assert all(ts % 1000 == 0 for ts in values)  # device time, second-aligned here
    health = [
        v for k, v in victoria.points("health_uptime_s").items() if ("device_id", device_id) in k
    ]
    assert sum(len(v) for v in health) == 3
    assert writer.metrics.telemetry_points._value.get() == 103
