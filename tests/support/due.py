"""A small region with a due list "now": two reception points and five containers in
Karaganda, their readings through the real ingest, for the route-from-due-list tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from edge.protocol import Channel, encode, topic
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.logistics.places import PlaceRow, store
from tests.support.accounts import BIN_A, BIN_B
from tests.support.builders import fake_device, register

REGION = "Karaganda"


def _box(pid: str, lat: float, lon: float, category: str, bin_: str, cap: int = 1100) -> PlaceRow:
    return PlaceRow(pid, "container", pid, REGION, lat, lon, cap, category, bin_, "krg-rp-01")


PLACES = [
    PlaceRow("krg-rp-01", "reception_point", "RP 1", REGION, 49.8060, 73.0850, *[None] * 4),
    PlaceRow("krg-rp-02", "reception_point", "RP 2", REGION, 49.8400, 73.1400, *[None] * 4),
    _box("krg-glass", 49.8100, 73.1000, "packaging_glass", BIN_A),
    _box("krg-paper", 49.8200, 73.0700, "packaging_paper", BIN_A, cap=2000),
    _box("krg-over", 49.8300, 73.1100, "packaging_polymer", BIN_A),
    _box("krg-low", 49.8000, 73.0900, "packaging_glass", BIN_A),
    _box("krg-other", 49.8150, 73.1200, "packaging_glass", BIN_B),
]
#: Each container's reading: glass and paper past the 80 % threshold, one overflowing,
#: one far below it, and another contractor's container due.
LEVELS = {
    "krg-glass": "90.0",
    "krg-paper": "85.5",
    "krg-over": "100.0",
    "krg-low": "10.0",
    "krg-other": "95.0",
}


def due_region(sessions: sessionmaker[Session], tmp: Path) -> datetime:
    """Store the places and one reading per container an hour ago; returns that hour."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    sensor = fake_device(tmp, "cs-krg-01", start=at)
    register(sessions, sensor, site_id="krg-rp-01", region=REGION)
    readings = [sensor.fill(level, container_id=cid) for cid, level in LEVELS.items()]
    IngestHandler(sessions).handle_batch(
        [Inbound(topic(r.device_id, Channel.FILL), encode(r), at) for r in readings]
    )
    with sessions.begin() as session:
        store(session, PLACES, by="test", source="test")
    return at
