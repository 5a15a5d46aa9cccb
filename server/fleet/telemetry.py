"""Telemetry: line protocol for InfluxDB, and a writer that loses nothing.

The schema (also in docs/telemetry.md; dashboards depend on it, keep it stable):

=============  ====================================  ==================================
measurement    tags                                  fields
=============  ====================================  ==================================
``fill``       device_id, container_id, site_id      fill_pct (float), distance_mm (int),
                                                     temperature_c (float, optional),
                                                     event (string, optional)
``health``     device_id, site_id                    uptime_s, outbox_depth,
                                                     oldest_unacked_s, reconnects,
                                                     serial_errors (int); last_frame_age_s,
                                                     disk_free_mb (int, optional);
                                                     cpu_temp_c (float, optional)
``weighing``   device_id, site_id, scale_id,         net_kg, gross_kg, tare_kg (float,
               category                              telemetry only), seq (int)
=============  ====================================  ==================================

Every point carries the **device's** timestamp in milliseconds. Decimal strings
from the wire are written as they are (a line-protocol float literal), never
through a Python float.

Durability: ingest writes the lines of a batch into ``telemetry_spool`` in the same
transaction as the batch (see :mod:`server.ledger.telemetry`), then hands them to
:class:`InfluxWriter`, which uses influxdb-client's batching ``WriteApi``. Its
buffer lives in memory and it reports outcomes only through callbacks, so a row
leaves the spool only in the success callback; the error callback schedules a
retry, and rows left behind by a crash are picked up again by any worker once
their ``next_attempt_at`` has passed. Writing a point twice is harmless: InfluxDB
keeps one value per series and timestamp.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import FillReading, Health, Weighing, parse_ts
from server.fleet.metrics import IngestMetrics
from server.ledger.telemetry import TelemetrySpool

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class TelemetrySink(Protocol):
    """Where committed spool rows go; implementations must not raise on an outage."""

    def submit(self, spool_id: int, body: bytes) -> None:
        """Deliver a committed spool row; delete it from the spool once delivered."""


# --------------------------------------------------------------------------- lines


def _tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _str_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def epoch_ms(ts: str) -> int:
    return (parse_ts(ts) - _EPOCH) // _MS


def fill_line(reading: FillReading, site_id: str) -> str:
    fields = [f"fill_pct={reading.fill_pct}", f"distance_mm={reading.distance_mm}i"]
    if reading.temperature_c is not None:
        fields.append(f"temperature_c={reading.temperature_c}")
    if reading.event is not None:
        fields.append(f"event={_str_field(reading.event.value)}")
    return (
        f"fill,container_id={_tag(reading.container_id)},device_id={_tag(reading.device_id)}"
        f",site_id={_tag(site_id)} {','.join(fields)} {epoch_ms(reading.ts)}"
    )


def health_line(health: Health, site_id: str) -> str:
    fields = [
        f"uptime_s={health.uptime_s}i",
        f"outbox_depth={health.outbox_depth}i",
        f"oldest_unacked_s={health.oldest_unacked_s}i",
        f"reconnects={health.reconnects}i",
        f"serial_errors={health.serial_errors}i",
    ]
    if health.last_frame_age_s is not None:
        fields.append(f"last_frame_age_s={health.last_frame_age_s}i")
    if health.disk_free_mb is not None:
        fields.append(f"disk_free_mb={health.disk_free_mb}i")
    if health.cpu_temp_c is not None:
        fields.append(f"cpu_temp_c={health.cpu_temp_c}")
    return (
        f"health,device_id={_tag(health.device_id)},site_id={_tag(site_id)}"
        f" {','.join(fields)} {epoch_ms(health.ts)}"
    )


def weighing_line(w: Weighing) -> str:
    return (
        f"weighing,category={_tag(w.category)},device_id={_tag(w.device_id)}"
        f",scale_id={_tag(w.scale_id)},site_id={_tag(w.site_id)}"
        f" net_kg={w.net_kg},gross_kg={w.gross_kg},tare_kg={w.tare_kg},seq={w.seq}i"
        f" {epoch_ms(w.ts)}"
    )


# --------------------------------------------------------------------------- writer


def _digest(body: bytes | str) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    return hashlib.blake2b(data, digest_size=16).digest()


class InfluxWriter:
    """influxdb-client's batching writer behind the durable spool.

    One spool row is one write request (``batch_size=1`` item, the item being a
    whole ingest batch of lines), so the success callback names exactly one row.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        url: str,
        token: str,
        org: str,
        bucket: str,
        metrics: IngestMetrics | None = None,
        retry_after_s: float = 90.0,
        max_in_flight: int = 64,
        poll_s: float = 1.0,
        client_retry_time_s: float = 60.0,
        error_backoff_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.url, self.token, self.org, self.bucket = url, token, org, bucket
        self.metrics = metrics or IngestMetrics()
        self.retry_after = timedelta(seconds=retry_after_s)
        self.max_in_flight = max_in_flight
        self.poll_s = poll_s
        self.client_retry_time_s = client_retry_time_s
        self.error_backoff_s = error_backoff_s
        self.clock = clock
        self._in_flight: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._write_api: Any = None

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> InfluxWriter:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import WriteOptions

        self._client = InfluxDBClient(url=self.url, token=self.token, org=self.org, timeout=10_000)
        options = WriteOptions(
            batch_size=1,
            flush_interval=100,
            jitter_interval=0,
            retry_interval=1_000,
            max_retries=8,
            max_retry_delay=15_000,
            exponential_base=2,
            max_retry_time=int(self.client_retry_time_s * 1000),
            max_close_wait=30_000,
        )
        self._write_api = self._client.write_api(
            write_options=options,
            success_callback=self._on_success,
            error_callback=self._on_error,
            retry_callback=self._on_retry,
        )
        self._stop.clear()
        self._thread = threading.Thread(target=self._resend_loop, name="telemetry-spool")
        self._thread.daemon = True
        self._thread.start()
        return self

    def close(self) -> None:
        """Flush what was handed over (bounded wait); the spool keeps the rest."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._write_api is not None:
            self._write_api.close()
        if self._client is not None:
            self._client.close()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    # ingest side ---------------------------------------------------------------------

    def submit(self, spool_id: int, body: bytes) -> None:
        with self._lock:
            if len(self._in_flight) >= self.max_in_flight:
                # The server is slow or down: leave the row to the resend loop rather
                # than grow the client's memory buffer without bound.
                return
            self._in_flight[_digest(body)] = spool_id
        self._write(body)

    def _write(self, body: bytes) -> None:
        from influxdb_client.domain.write_precision import WritePrecision

        self._write_api.write(
            bucket=self.bucket, org=self.org, record=body, write_precision=WritePrecision.MS
        )

    # callbacks (influxdb-client's thread) ----------------------------------------------

    def _on_success(self, conf: tuple[str, str, str], data: bytes | str) -> None:
        with self._lock:
            spool_id = self._in_flight.pop(_digest(data), None)
        if spool_id is None:
            return
        try:
            with self.sessions.begin() as session:
                points = session.scalar(
                    select(TelemetrySpool.points).where(TelemetrySpool.id == spool_id)
                )
                session.execute(delete(TelemetrySpool).where(TelemetrySpool.id == spool_id))
            self.metrics.telemetry_points.inc(points or 0)
        except Exception:  # the row stays and is written again later: harmless
            log.exception("could not remove delivered spool row %d", spool_id)

    def _on_error(self, conf: tuple[str, str, str], data: bytes | str, exc: Exception) -> None:
        with self._lock:
            spool_id = self._in_flight.pop(_digest(data), None)
        self.metrics.telemetry_errors.inc()
        log.warning("telemetry write failed (spool row %s kept): %s", spool_id, exc)
        if spool_id is None:
            return
        try:
            with self.sessions.begin() as session:
                row = session.get(TelemetrySpool, spool_id)
                if row is not None:
                    row.attempts += 1
                    row.last_error = str(exc)[:2000]
                    backoff = min(300.0, self.error_backoff_s * 2 ** min(row.attempts, 6))
                    row.next_attempt_at = self.clock() + timedelta(seconds=backoff)
        except Exception:
            log.exception("could not reschedule spool row %d", spool_id)

    def _on_retry(self, conf: tuple[str, str, str], data: bytes | str, exc: Exception) -> None:
        self.metrics.telemetry_retries.inc()
        log.info("telemetry write retrying: %s", exc)

    # resend loop -----------------------------------------------------------------------

    def _resend_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.resend_due()
            except Exception:  # database down: try again next round
                log.exception("telemetry spool scan failed")

    def resend_due(self, limit: int | None = None) -> int:
        """Claim due spool rows (also other workers' orphans) and write them again."""
        room = self.max_in_flight - self.in_flight()
        if limit is not None:
            room = min(room, limit)
        if room <= 0:
            return 0
        now = self.clock()
        with self._lock:
            mine = set(self._in_flight.values())
        with self.sessions.begin() as session:
            rows = session.execute(
                select(TelemetrySpool.id, TelemetrySpool.body)
                .where(TelemetrySpool.next_attempt_at <= now)
                .order_by(TelemetrySpool.id)
                .limit(room + len(mine))
            ).all()
            rows = [r for r in rows if r.id not in mine][:room]
            if rows:
                session.execute(
                    update(TelemetrySpool)
                    .where(TelemetrySpool.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=now + self.retry_after)
                )
            depth = session.scalar(select(func.count()).select_from(TelemetrySpool))
            self.metrics.spool_rows.set(depth or 0)
        for r in rows:
            with self._lock:
                self._in_flight[_digest(r.body)] = r.id
            self._write(bytes(r.body))
        return len(rows)


def spool_row(lines: Sequence[str], now: datetime, retry_after_s: float) -> TelemetrySpool:
    return TelemetrySpool(
        body="\n".join(lines).encode(),
        points=len(lines),
        created_at=now,
        next_attempt_at=now + timedelta(seconds=retry_after_s),
        attempts=0,
    )
