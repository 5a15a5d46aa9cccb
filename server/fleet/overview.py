"""The fleet as the operator sees it: devices by site, their availability and health,
and the fill level of their containers — from the latest state ingest keeps in the
ledger (``device_state``, ``container_state``); one device in full (:func:`device`):
its recent health reports, alarms, configuration revision wanted and applied, its
scales' verification certificates. Long history is in InfluxDB/Grafana."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.fleet.alarms import list_alarms
from server.ledger.alarms import AlarmRecord
from server.ledger.devices import DeviceConfig, DeviceHealth
from server.ledger.models import ContainerState, Device, DeviceState, Scale, Site

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
    session: Session,
    *,
    now: datetime | None = None,
    stale_after_s: int = 600,
    device_id: str | None = None,
) -> list[FleetDevice]:
    """Every registered device (or only ``device_id``), ordered by region, site and id."""
    moment = now or datetime.now(UTC)
    containers: dict[str, list[Container]] = defaultdict(list)
    for c in session.scalars(select(ContainerState).order_by(ContainerState.container_id)):
        containers[c.device_id].append(
            Container(c.container_id, c.fill_pct, c.distance_mm, c.measured_at, c.last_event)
        )
    query = (
        select(Device, Site, DeviceState)
        .join(Site, Site.site_id == Device.site_id)
        .outerjoin(DeviceState, DeviceState.device_id == Device.device_id)
        .order_by(Site.region, Site.site_id, Device.device_id)
    )
    if device_id is not None:
        query = query.where(Device.device_id == device_id)
    rows = session.execute(query).all()
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


@dataclass(frozen=True, slots=True)
class ScaleCertificate:
    scale_id: str
    certificate_no: str
    verified_until: date | None
    days_left: int | None
    """Days until the verification expires (negative: expired); None: no date on file."""


@dataclass(frozen=True, slots=True)
class ConfigRevision:
    desired: int | None
    desired_at: datetime | None
    reported: int | None
    applied: bool | None
    reason: str | None
    reported_at: datetime | None

    @property
    def in_force(self) -> bool:
        """The device applied the revision the server wants (or none is wanted)."""
        return self.desired is None or (self.reported == self.desired and bool(self.applied))


@dataclass(frozen=True, slots=True)
class DevicePage:
    device: FleetDevice
    health_at: datetime | None
    clock_offset_ms: int | None
    history: list[DeviceHealth]
    alarms: list[AlarmRecord]
    config: ConfigRevision
    scales: list[ScaleCertificate]


def device(
    session: Session,
    device_id: str,
    *,
    now: datetime | None = None,
    stale_after_s: int = 600,
    history: int = 50,
) -> DevicePage | None:
    """One device in full, or None if it is not registered."""
    moment = now or datetime.now(UTC)
    found = fleet(session, now=moment, stale_after_s=stale_after_s, device_id=device_id)
    if not found:
        return None
    state = session.get(DeviceState, device_id)
    cfg = session.get(DeviceConfig, device_id)
    reports = list(
        session.scalars(
            select(DeviceHealth)
            .where(DeviceHealth.device_id == device_id)
            .order_by(DeviceHealth.measured_at.desc(), DeviceHealth.seq.desc())
            .limit(history)
        )
    )
    today = moment.date()  # as the sweep that raises the expiry alarms counts
    scales = [
        ScaleCertificate(
            sc.scale_id,
            sc.certificate_no,
            sc.verified_until,
            (sc.verified_until - today).days if sc.verified_until else None,
        )
        for sc in session.scalars(
            select(Scale).where(Scale.device_id == device_id).order_by(Scale.scale_id)
        )
    ]
    return DevicePage(
        device=found[0],
        health_at=state.health_at if state else None,
        clock_offset_ms=state.clock_offset_ms if state else None,
        history=reports,
        alarms=list_alarms(session, device_id=device_id, limit=100),
        config=ConfigRevision(
            cfg.desired_revision if cfg else None,
            cfg.desired_at if cfg else None,
            cfg.reported_revision if cfg else None,
            cfg.reported_applied if cfg else None,
            cfg.reported_reason if cfg else None,
            cfg.reported_at if cfg else None,
        ),
        scales=scales,
    )
