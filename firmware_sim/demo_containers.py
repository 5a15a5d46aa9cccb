"""The demo's containers: a few simulated containers around each demo reception point,
with coordinates, three weeks of signed fill readings up to now through the real
ingest handler, and one of each misbehaviour, so the map, a container's history and
the due list show something after ``make demo``.

Each reception point gets a level-sensor device (a Pi with several fill channels,
``edge/containers.py``), registered and approved like the scales' agents; its
readings are sealed with its own key and handed to :class:`IngestHandler` in
batches, as the MQTT subscriber would hand them over.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from edge.evidence import DeviceKey
from edge.protocol import Channel, FillEvent, FillReading, encode, format_ts, seal, topic
from firmware_sim.containers import RHYTHMS, FillHistory, SimPlace, history
from server.fleet.ingest.handler import IngestHandler
from server.fleet.ingest.messages import Inbound
from server.fleet.registry import register_device, set_device_status
from server.logistics.places import PlaceRow, store

#: The demo sites' coordinates (sites come from ``data/demo_sites.csv``).
SITES: Final = {
    "almaty-rp-01": ("Almaty", 43.2567, 76.9286),
    "astana-rp-01": ("Astana", 51.1282, 71.4304),
    "shymkent-rp-01": ("Shymkent", 42.3417, 69.5901),
    "karaganda-rp-01": ("Karaganda", 49.8047, 73.1094),
    "aktobe-rp-01": ("Aktobe", 50.2839, 57.1670),
}
#: Contractors of the demo contracts that empty containers.
PACKAGING_BIN: Final = "180740045674"
BATTERY_BIN: Final = "150640034560"
KINDS: Final = (
    ("packaging_polymer", None),
    ("packaging_polymer", None),
    ("packaging_glass", None),
    ("packaging_paper", None),
    ("batteries", None),
    ("packaging_polymer", "overflow"),
)
#: One container per misbehaviour besides the overflow above.
ODD: Final = {"astana-rp-01": "stuck", "karaganda-rp-01": "silent", "aktobe-rp-01": "lid_open"}
DEPTH_MM: Final = 1200
BLIND_MM: Final = 200


@dataclass(frozen=True, slots=True)
class DemoContainers:
    places: int
    containers: int
    readings: int


def demo_places(seed: int) -> list[SimPlace]:
    places: list[SimPlace] = []
    for n, (site_id, (region, lat, lon)) in enumerate(SITES.items()):
        places.append(SimPlace(site_id, "reception_point", site_id, region, lat, lon))
        for k, (category, fault) in enumerate(KINDS):
            angle = 2 * math.pi * k / len(KINDS)
            fault = fault or (ODD.get(site_id) if k == 1 else None)
            places.append(
                SimPlace(
                    f"{site_id[:-6]}-c{k + 1:02d}",
                    "container",
                    f"{site_id.split('-')[0].title()} {category} container {k + 1}",
                    region,
                    round(lat + 0.02 * math.sin(angle), 5),
                    round(lon + 0.03 * math.cos(angle), 5),
                    category=category,
                    capacity_l=RHYTHMS[category].capacity_l,
                    contractor_bin=BATTERY_BIN if category == "batteries" else PACKAGING_BIN,
                    site_id=site_id,
                    rate_scale=0.8 + 0.1 * k,
                    fault=fault,
                    seed=seed * 1000 + n * 10 + k,
                )
            )
    return places


def _readings(h: FillHistory, device_id: str, key: DeviceKey, first_seq: int) -> list[FillReading]:
    out: list[FillReading] = []
    seq = first_seq
    previous = 0.0
    emptied = set(h.emptied)
    for i, value in enumerate(h.observed.tolist()):
        if math.isnan(value):
            continue
        level = min(max(value, 0.0), 100.0)  # the wire's range; beyond is "overflow"
        event = None
        if i in emptied:
            event = FillEvent.EMPTIED
        elif level >= 99.5 > previous:
            event = FillEvent.OVERFLOW
        elif level >= 80 > previous:
            event = FillEvent.FULL
        previous = level
        at = h.start + timedelta(hours=i + 1) - timedelta(minutes=2)
        distance = BLIND_MM + round((1 - level / 100) * (DEPTH_MM - BLIND_MM))
        seq += 1
        out.append(
            seal(
                FillReading(
                    device_id=device_id,
                    boot_id="demo-boot",
                    seq=seq,
                    ts=format_ts(at),
                    time_synced=True,
                    mono_ms=seq * 3_600_000,
                    container_id=h.place.place_id,
                    distance_mm=distance,
                    fill_pct=f"{level:.1f}",
                    event=event,
                ),
                key.sign,
            )
        )
    return out


def add_demo_containers(
    sessions: sessionmaker[Session],
    handler: IngestHandler,
    *,
    seed: int,
    now: datetime | None = None,
    days: int = 14,
) -> DemoContainers:
    """Places with coordinates, a sensor device per reception point, and ``days`` of
    signed readings up to ``now`` through ``handler``."""
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    places = demo_places(seed)
    rows = [
        PlaceRow(
            p.place_id,
            p.kind,
            p.name,
            p.region,
            p.latitude,
            p.longitude,
            p.capacity_l,
            p.category,
            p.contractor_bin,
            p.site_id,
        )
        for p in places
    ]
    keys = {site_id: DeviceKey.generate() for site_id in SITES}
    with sessions.begin() as session:
        store(session, rows, by="demo", source="demo containers")
        for site_id, key in keys.items():
            device_id = f"cs-{site_id}"
            registered = now - timedelta(days=days + 1)
            register_device(
                session,
                device_id,
                site_id=site_id,
                public_key=key.public_key_b64(),
                kind="container",
                now=registered,
                by="demo",
            )
            set_device_status(session, device_id, "approved", registered, by="demo")
    readings: list[FillReading] = []
    seqs = dict.fromkeys(SITES, 0)
    for p in places:
        if p.kind != "container" or p.site_id is None:
            continue
        h = history(p, end=now, days=days, future_days=1)
        got = _readings(h, f"cs-{p.site_id}", keys[p.site_id], seqs[p.site_id])
        seqs[p.site_id] += len(got)
        readings.extend(got)
    readings.sort(key=lambda r: r.ts)
    _ingest(handler, readings)
    return DemoContainers(len(places), sum(p.kind == "container" for p in places), len(readings))


def _ingest(handler: IngestHandler, readings: Sequence[FillReading]) -> None:
    for i in range(0, len(readings), 500):
        handler.handle_batch(
            [
                Inbound(
                    topic(r.device_id, Channel.FILL),
                    encode(r),
                    datetime.fromisoformat(r.ts.replace("Z", "+00:00")) + timedelta(seconds=1),
                )
                for r in readings[i : i + 500]
            ]
        )
