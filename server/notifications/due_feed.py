"""The due list as notifications: each poll of the dispatcher computes the due list
and queues "container due" and "container overflowing" for what is on it.

A container is told of once per **due period** — the time since its last emptying
(or since it was first seen, when it never was): the poll runs every minute and the
forecast's predicted time moves with every reading, so keying the event on the
prediction would repeat it; keying it on the last emptying does not. Once the
container is emptied and fills again, it is a new period and a new event.

Silent containers are left to the alarms (``device_silent``), and a container whose
``container_overflow`` alarm is open is already told of by that alarm.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.ledger.models import FillEvent
from server.logistics.due import DEFAULT_HORIZON_H, DueItem, due_list
from server.logistics.forecast import DEFAULT_THRESHOLD
from server.notifications.events import NewEvent, due_event, enqueue, overflowing_event
from server.people.accounts import Scope

FIRST_PERIOD = "first"
"""The period of a container never emptied."""


def last_emptied(session: Session, container_ids: Sequence[str]) -> dict[str, datetime]:
    """Each container's last ``emptied`` fill event, where it has one."""
    out: dict[str, datetime] = {}
    ids = sorted(set(container_ids))
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(FillEvent.container_id, func.max(FillEvent.measured_at))
            .where(FillEvent.container_id.in_(ids[start : start + 500]))
            .where(FillEvent.event == "emptied")
            .group_by(FillEvent.container_id)
        )
        out.update((cid, at) for cid, at in rows if at is not None)
    return out


def events_of(
    items: Sequence[DueItem], emptied: dict[str, datetime], *, now: datetime
) -> list[NewEvent]:
    """The events for a due list, one per container due or overflowing."""
    events: list[NewEvent] = []
    for item in items:
        p = item.place
        at = emptied.get(p.place_id)
        period = FIRST_PERIOD if at is None else at.strftime("%Y-%m-%dT%H:%M:%S")
        fill = None if item.fill_pct is None else float(item.fill_pct)
        if item.reason == "due":
            events.append(
                due_event(
                    p.place_id,
                    due_at=item.due_at or now,
                    now=now,
                    fill_pct=fill,
                    region=p.region,
                    contractor_bin=p.contractor_bin,
                    period=period,
                )
            )
        elif item.reason == "overflowing":
            events.append(
                overflowing_event(
                    p.place_id,
                    period=period,
                    now=now,
                    fill_pct=fill,
                    region=p.region,
                    contractor_bin=p.contractor_bin,
                )
            )
    return events


def feed(
    session: Session,
    *,
    now: datetime,
    horizon_h: float = DEFAULT_HORIZON_H,
    threshold: float = DEFAULT_THRESHOLD,
) -> int:
    """Queue the due list's events not queued before; how many were new."""
    items = [
        i
        for i in due_list(
            session, Scope.everything(), now=now, horizon_h=horizon_h, threshold=threshold
        )
        if i.reason == "due" or (i.reason == "overflowing" and "container_overflow" not in i.alarms)
    ]
    emptied = last_emptied(session, [i.place.place_id for i in items])
    return enqueue(session, events_of(items, emptied, now=now), now=now)
