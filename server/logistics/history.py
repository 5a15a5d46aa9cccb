"""A container's fill history from the ledger (hourly rollups, fill events, alarms,
device health) — no InfluxDB needed — and the series the forecasts read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.fleet.overview import HEALTH_FIELDS
from server.ledger.alarms import AlarmRecord
from server.ledger.models import ContainerState, DeviceState, FillEvent
from server.ledger.places import Place
from server.ledger.telemetry import FillRollup
from server.logistics.forecast import DEFAULT_THRESHOLD, Forecast, Series, forecast_all
from server.logistics.places import visible_place
from server.people.accounts import Scope

HISTORY_DAYS: Final = 28
"""How far back forecasts and the container page read the rollups."""


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def load_series(
    session: Session, places: Sequence[Place], *, now: datetime, days: int = HISTORY_DAYS
) -> list[Series]:
    """Each container's hourly last level over ``days`` up to ``now`` (NaN: no reading)."""
    start = _hour(now) - timedelta(days=days)
    hours = days * 24 + 1
    series: list[Series] = []
    for i in range(0, len(places), 500):
        chunk = {p.place_id: p for p in places[i : i + 500] if p.kind == "container"}
        if not chunk:
            continue
        values = {cid: np.full(hours, np.nan) for cid in chunk}
        for cid, hour, last in session.execute(
            select(FillRollup.container_id, FillRollup.hour, FillRollup.last_centi).where(
                FillRollup.container_id.in_(list(chunk)), FillRollup.hour >= start
            )
        ):
            idx = int((hour - start).total_seconds() // 3600)
            if 0 <= idx < hours:
                values[cid][idx] = last / 100
        for cid, place in chunk.items():
            series.append(Series(cid, place.category or "", start, values[cid]))
    return series


def forecasts(
    session: Session,
    places: Sequence[Place],
    *,
    now: datetime,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Forecast]:
    return forecast_all(load_series(session, places, now=now), now=now, threshold=threshold)


@dataclass(frozen=True, slots=True)
class RollupPoint:
    hour: datetime
    last: float
    low: float
    high: float


def _health(text: str | None) -> dict[str, int]:
    """The fleet page's integer health fields of the device's last health message."""
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v for k in HEALTH_FIELDS if isinstance(v := data.get(k), int) and not isinstance(v, bool)
    }


@dataclass(frozen=True, slots=True)
class ContainerDetail:
    place: Place
    state: ContainerState | None
    points: list[RollupPoint]
    events: list[FillEvent]
    alarms: list[AlarmRecord]
    device: DeviceState | None
    health: dict[str, int]
    forecast: Forecast
    since: datetime
    threshold: float


def container_detail(
    session: Session,
    scope: Scope,
    container_id: str,
    *,
    now: datetime,
    days: int = 14,
    threshold: float = DEFAULT_THRESHOLD,
) -> ContainerDetail:
    """Everything the container page shows; another contractor's container is a 404
    (``NotFound``) like a missing one."""
    place = visible_place(session, scope, container_id)
    if place.kind != "container":
        scope.visible(None, f"container {container_id}")
    since = _hour(now) - timedelta(days=days)
    points = [
        RollupPoint(r.hour, r.last_centi / 100, r.min_centi / 100, r.max_centi / 100)
        for r in session.scalars(
            select(FillRollup)
            .where(FillRollup.container_id == container_id, FillRollup.hour >= since)
            .order_by(FillRollup.hour)
        )
    ]
    events = list(
        session.scalars(
            select(FillEvent)
            .where(FillEvent.container_id == container_id, FillEvent.measured_at >= since)
            .order_by(FillEvent.measured_at)
        )
    )
    alarms = list(
        session.scalars(
            select(AlarmRecord)
            .where(AlarmRecord.subject == container_id, AlarmRecord.subject_kind == "container")
            .order_by(AlarmRecord.raised_at.desc())
            .limit(50)
        )
    )
    state = session.get(ContainerState, container_id)
    device = session.get(DeviceState, state.device_id) if state else None
    health = _health(device.last_health if device else None)
    forecast = forecasts(session, [place], now=now, threshold=threshold)[container_id]
    return ContainerDetail(
        place, state, points, events, alarms, device, health, forecast, since, threshold
    )
