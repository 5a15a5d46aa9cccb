"""Prometheus metrics: outcomes, dead letters and lag, scraped over HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import encode
from server.fleet.broker import free_port
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.fleet.metrics import IngestMetrics
from tests.support.builders import fake_device, register
from tests.support.ingest import NOW, inbound


def test_outcomes_dead_letters_and_lag_are_exported(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    dev = fake_device(tmp_path)
    register(sessions, dev)
    metrics = IngestMetrics()
    handler = IngestHandler(sessions, metrics=metrics)
    w = dev.weigh("10")
    handler.handle_batch(
        [
            inbound(dev.device_id, encode(w)),
            inbound(dev.device_id, encode(w)),
            Inbound("not/ours", b"{", NOW),
        ]
    )
    port = free_port()
    server = metrics.serve(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        if isinstance(server, tuple):
            server[0].shutdown()
            server[0].server_close()
    assert 'epr_ingest_messages_total{channel="weighing",outcome="accepted"} 1.0' in text
    assert 'epr_ingest_messages_total{channel="weighing",outcome="duplicate"} 1.0' in text
    assert 'epr_ingest_dead_letters_total{channel="unknown"} 1.0' in text
    assert "epr_ingest_lag_seconds_count 3.0" in text
    assert "epr_ingest_record_age_seconds_count 1.0" in text
    assert "epr_telemetry_spool_rows 0.0" in metrics.render().decode()
