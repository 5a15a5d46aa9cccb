"""The notification outbox: events appended once each, in id order.

Two ways in:

* :func:`collect` polls the ledger — new holds, new draft statements, new alarms —
  from a cursor per source. Money and the fleet therefore know nothing of
  notifications (they sit below this part), and an event is queued however the hold
  or alarm came about (a scan, a sweep, an ingest worker, the command line).
  Writers on PostgreSQL may commit ids out of order, so each poll also re-reads the
  last ``overlap`` of rows below the cursor; ``(source, source_id)`` is unique, so a
  row is never queued twice.
* Producers above the ledger call :func:`enqueue` or a named helper such as
  :func:`container_due` (the due list's way in).

Every writer first locks the ``events`` cursor row, so event ids are committed in
the order they are given and a subscription's ``sent_through`` never skips one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.ledger.accounting import Hold, StoredStatement
from server.ledger.alarms import AlarmRecord
from server.ledger.models import Site, Ticket
from server.ledger.notifications import NotificationCursor, NotificationEvent
from server.ledger.types import storable_text

HEAD = "events"
DEFAULT_OVERLAP = timedelta(minutes=10)


class EventKind(StrEnum):
    CONTAINER_DUE = "container_due"
    CONTAINER_OVERFLOWING = "container_overflowing"
    DEVICE_SILENT = "device_silent"
    HOLD_OPENED = "hold_opened"
    STATEMENT_READY = "statement_ready"


#: Alarm codes and the event each becomes.
ALARM_EVENTS = {
    "device_stale": EventKind.DEVICE_SILENT,
    "device_offline": EventKind.DEVICE_SILENT,
    "container_overflow": EventKind.CONTAINER_OVERFLOWING,
    "container_full": EventKind.CONTAINER_DUE,
}


@dataclass(frozen=True)
class NewEvent:
    kind: EventKind
    subject: str
    text: str
    source: str
    source_id: str
    occurred_at: datetime
    region: str | None = None
    contractor_bin: str | None = None


def _lock_head(session: Session) -> NotificationCursor:
    head = session.scalars(
        select(NotificationCursor).where(NotificationCursor.source == HEAD).with_for_update()
    ).one_or_none()
    if head is None:
        # Made by migration 0630; re-made here if someone deleted it.
        head = NotificationCursor(source=HEAD, last_id=0)
        session.add(head)
        session.flush()
    return head


def enqueue(session: Session, events: Sequence[NewEvent], *, now: datetime) -> int:
    """Append ``events`` not already queued (by ``(source, source_id)``); how many were new."""
    if not events:
        return 0
    _lock_head(session)
    keys = {(e.source, e.source_id) for e in events}
    existing: set[tuple[str, str]] = set()
    by_source: dict[str, list[str]] = {}
    for source, source_id in keys:
        by_source.setdefault(source, []).append(source_id)
    for source, ids in by_source.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            existing.update(
                (source, sid)
                for sid in session.scalars(
                    select(NotificationEvent.source_id).where(
                        NotificationEvent.source == source,
                        NotificationEvent.source_id.in_(chunk),
                    )
                )
            )
    added = 0
    for e in sorted(events, key=lambda e: (e.occurred_at, e.source, e.source_id)):
        if (e.source, e.source_id) in existing:
            continue
        existing.add((e.source, e.source_id))
        session.add(
            NotificationEvent(
                kind=e.kind.value,
                subject=storable_text(e.subject)[:128],
                text=storable_text(e.text)[:500],
                region=e.region,
                contractor_bin=e.contractor_bin,
                source=e.source,
                source_id=e.source_id,
                occurred_at=e.occurred_at,
                queued_at=now,
            )
        )
        added += 1
    session.flush()
    return added


def _container_event(
    kind: EventKind,
    container_id: str,
    *,
    fill_pct: float | None,
    says: str,
    source: str,
    period: str,
    now: datetime,
    region: str | None,
    contractor_bin: str | None,
) -> NewEvent:
    """One due-list event about a container, keyed once per container and ``period``."""
    fill = "" if fill_pct is None else f" ({fill_pct:.0f} % full)"
    return NewEvent(
        kind=kind,
        subject=container_id,
        text=f"container {container_id}{fill} {says}",
        source=source,
        source_id=f"{container_id}@{period}",
        occurred_at=now,
        region=region,
        contractor_bin=contractor_bin,
    )


def due_event(
    container_id: str,
    *,
    due_at: datetime,
    now: datetime,
    fill_pct: float | None = None,
    region: str | None = None,
    contractor_bin: str | None = None,
    period: str | None = None,
) -> NewEvent:
    """ "Container due" as the due list says it: keyed once per container and due day,
    or — given ``period`` (what names the container's due period, such as its last
    emptying) — once per container and period, however the predicted time moves."""
    return _container_event(
        EventKind.CONTAINER_DUE,
        container_id,
        fill_pct=fill_pct,
        says=f"due by {due_at:%Y-%m-%d %H:%M} UTC",
        source="due_list",
        period=period if period is not None else f"{due_at:%Y-%m-%d}",
        now=now,
        region=region,
        contractor_bin=contractor_bin,
    )


def overflowing_event(
    container_id: str,
    *,
    period: str,
    now: datetime,
    fill_pct: float | None = None,
    region: str | None = None,
    contractor_bin: str | None = None,
) -> NewEvent:
    """ "Container overflowing" as the due list says it: once per container and due
    period (``period`` as for :func:`due_event`)."""
    return _container_event(
        EventKind.CONTAINER_OVERFLOWING,
        container_id,
        fill_pct=fill_pct,
        says="is overflowing",
        source="due_list_overflow",
        period=period,
        now=now,
        region=region,
        contractor_bin=contractor_bin,
    )


def container_due(
    session: Session,
    container_id: str,
    *,
    due_at: datetime,
    now: datetime,
    fill_pct: float | None = None,
    region: str | None = None,
    contractor_bin: str | None = None,
    period: str | None = None,
) -> int:
    """Queue "container due" (:func:`due_event`); 1 if it was new, else 0."""
    event = due_event(
        container_id,
        due_at=due_at,
        now=now,
        fill_pct=fill_pct,
        region=region,
        contractor_bin=contractor_bin,
        period=period,
    )
    return enqueue(session, [event], now=now)


def _cursor(session: Session, source: str, current_max: int | None) -> NotificationCursor:
    row = session.get(NotificationCursor, source)
    if row is None:
        # The first poll starts from now: what happened before notifications were
        # switched on is not news.
        row = NotificationCursor(source=source, last_id=current_max or 0)
        session.add(row)
        session.flush()
    return row


def _regions(session: Session, site_ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({s for s in site_ids if s})
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        rows = session.execute(select(Site.site_id, Site.region).where(Site.site_id.in_(chunk)))
        out.update((site_id, region) for site_id, region in rows)
    return out


def collect(session: Session, *, now: datetime, overlap: timedelta = DEFAULT_OVERLAP) -> int:
    """Queue events for holds, draft statements and alarms new since the last poll."""
    _lock_head(session)
    since = now - overlap
    new: list[NewEvent] = []

    hold_max = session.scalar(select(func.max(Hold.id)))
    cursor = _cursor(session, "holds", hold_max)
    rows: Sequence[Any] = session.execute(
        select(Hold, Ticket.site_id)
        .join(Ticket, Ticket.id == Hold.ticket_id)
        .where(or_(Hold.id > cursor.last_id, Hold.detected_at >= since))
        .order_by(Hold.id)
    ).all()
    regions = _regions(session, (site for _h, site in rows))
    for hold, site_id in rows:
        new.append(
            NewEvent(
                EventKind.HOLD_OPENED,
                subject=f"ticket {hold.ticket_id}",
                text=f"hold {hold.id} on ticket {hold.ticket_id} at {site_id}: {hold.reason}",
                source="holds",
                source_id=str(hold.id),
                occurred_at=hold.detected_at,
                region=regions.get(site_id),
            )
        )
    cursor.last_id = max([cursor.last_id, *(h.id for h, _s in rows)])

    st_max = session.scalar(select(func.max(StoredStatement.id)))
    cursor = _cursor(session, "statements", st_max)
    statements = session.scalars(
        select(StoredStatement)
        .where(
            or_(StoredStatement.id > cursor.last_id, StoredStatement.computed_at >= since),
            StoredStatement.status == "draft",
        )
        .order_by(StoredStatement.id)
    ).all()
    for st in statements:
        new.append(
            NewEvent(
                EventKind.STATEMENT_READY,
                subject=f"statement {st.id}",
                text=(
                    f"statement {st.id} for {st.contractor_bin}, {st.period}:"
                    f" {st.total_kzt} KZT, ready for approval"
                ),
                source="statements",
                source_id=str(st.id),
                occurred_at=st.computed_at,
                contractor_bin=st.contractor_bin,
            )
        )
    cursor.last_id = max([cursor.last_id, *(s.id for s in statements)])

    al_max = session.scalar(select(func.max(AlarmRecord.id)))
    cursor = _cursor(session, "alarms", al_max)
    alarms = session.scalars(
        select(AlarmRecord)
        .where(
            or_(AlarmRecord.id > cursor.last_id, AlarmRecord.raised_at >= since),
            AlarmRecord.code.in_(sorted(ALARM_EVENTS)),
        )
        .order_by(AlarmRecord.id)
    ).all()
    regions = _regions(session, (a.site_id for a in alarms))
    for alarm in alarms:
        new.append(
            NewEvent(
                ALARM_EVENTS[alarm.code],
                subject=alarm.subject,
                text=f"{alarm.subject}: {alarm.message}",
                source="alarms",
                source_id=str(alarm.id),
                occurred_at=alarm.raised_at,
                region=regions.get(alarm.site_id or ""),
            )
        )
    cursor.last_id = max([cursor.last_id, *(a.id for a in alarms)])
    return enqueue(session, new, now=now)
