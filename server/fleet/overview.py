"""The fleet as the operator sees it: devices by site, their availability and health,
and the fill level of their containers — from the latest state ingest keeps in the
ledger (``device_state``, ``container_state``); history is in InfluxDB/Grafana."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.models import ContainerState, Device, DeviceState, Site

#: Health fields shown on the page (all integers in the health message).
HEALTH_FIELDS: Final = (
    "uptime_s",
    "outbox_depth",
    "oldest_unacked_s",
    "reconnects",
    "serial_errors",
    "last_frame_age_s",
    "disk_free_mb",
)
FULL_PCT: Final = Decimal(80)


class Availability(StrEnum):
    ONLINE = "online"
    STALE = "stale"
    """Said it was online, but nothing heard for longer than the stale limit."""
    OFFLINE = "offline"
    UNKNOWN = "unknown"
    """Never heard from."""


@dataclass(frozen=True, slots=True)
class Container:
    container_id: str
    fill_pct: Decimal
    distance_mm: int
    measured_at: datetime
    last_event: str | None

    @property
    def full(self) -> bool:
        return self.fill_pct >= FULL_PCT


@dataclass(frozen=True, slots=True)
class FleetDevice:
    device_id: str
    site_id: str
    site_name: str
    region: str
    kind: str
    status: str
    """Registry status: pending, approved, revoked."""
    availability: Availability
    last_seen_at: datetime | None
    boot_id: str | None
    health: dict[str, int] = field(default_factory=dict)
    containers: tuple[Container, ...] = ()


def _health(text: str | None) -> dict[str, int]:
    """The integer health fields of the last health message; junk yields nothing."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v for k in HEALTH_FIELDS if isinstance(v := data.get(k), int) and not isinstance(v, bool)
    }


def availability(state: DeviceState | None, now: datetime, stale_after_s: int) -> Availability:
    if state is None or state.online is None:
        return Availability.UNKNOWN
    if not state.online:
        return Availability.OFFLINE
    if state.last_seen_at is None or now - state.last_seen_at > timedelta(seconds=stale_after_s):
        return Availability.STALE
    return Availability.ONLINE


def fleet(
    session: Session, *, now: datetime | None = None, stale_after_s: int = 600
) -> list[FleetDevice]:
    """Every registered device, ordered by region, site and id."""
    moment = now or datetime.now(UTC)
    containers: dict[str, list[Container]] = defaultdict(list)
    for c in session.scalars(select(ContainerState).order_by(ContainerState.container_id)):
        containers[c.device_id].append(
            Container(c.container_id, c.fill_pct, c.distance_mm, c.measured_at, c.last_event)
        )
    rows = session.execute(
        select(Device, Site, DeviceState)
        .join(Site, Site.site_id == Device.site_id)
        .outerjoin(DeviceState, DeviceState.device_id == Device.device_id)
        .order_by(Site.region, Site.site_id, Device.device_id)
    ).all()
    return [
        FleetDevice(
            device_id=d.device_id,
            site_id=site.site_id,
            site_name=site.name,
            region=site.region,
            kind=d.kind,
            status=d.status,
            availability=availability(state, moment, stale_after_s),
            last_seen_at=state.last_seen_at if state else None,
            boot_id=state.boot_id if state else None,
            health=_health(state.last_health if state else None),
            containers=tuple(containers.get(d.device_id, ())),
        )
        for d, site, state in rows
    ]
