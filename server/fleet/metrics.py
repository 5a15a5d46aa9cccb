"""Prometheus metrics of an ingest worker (and the ledger gauges the API exposes).

Each worker owns a :class:`IngestMetrics` with its own registry (no global state,
so tests and several workers in one process do not collide) and serves it with
``prometheus_client``'s HTTP server on ``metrics_port``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "epr_ingest_messages",
            "Messages handled, by channel and outcome (accepted, duplicate, rejected, error)",
            ["channel", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            "epr_ingest_dead_letters", "Payloads stored as dead letters", ["channel"], registry=r
        )
        self.batches = Counter("epr_ingest_batches", "Ledger transactions committed", registry=r)
        self.lag = Histogram(
            "epr_ingest_lag_seconds",
            "From receipt by the worker to the ledger commit",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.record_age = Histogram(
            "epr_ingest_record_age_seconds",
            "From the device's timestamp to the ledger commit (weighings and fill readings)",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.ledger_errors = Counter(
            "epr_ledger_write_errors",
            "Ledger transactions that failed and were retried, by error class",
            ["error"],
            registry=r,
        )
        self.ack_refused = Counter(
            "epr_ingest_ack_publish_refused",
            "Acks the MQTT client did not accept (the device resends and is acked again)",
            registry=r,
        )
        self.inbox = Gauge(
            "epr_ingest_inbox_messages", "Messages received and not yet committed", registry=r
        )
        self.telemetry_points = Counter(
            "epr_telemetry_points_written", "Points confirmed by the time-series store", registry=r
        )
        self.telemetry_errors = Counter(
            "epr_telemetry_write_errors",
            "Telemetry writes that failed after the client's retries (kept in the spool)",
            registry=r,
        )
        self.telemetry_retries = Counter(
            "epr_telemetry_write_retries", "Telemetry write attempts retried", registry=r
        )
        self.spool_rows = Gauge(
            "epr_telemetry_spool_rows", "Telemetry batches awaiting confirmation", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on a background thread; returns the server."""
        return start_http_server(port, addr=addr, registry=self.registry)
