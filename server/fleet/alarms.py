"""Status and alarms: derived by ingest from each message, and by periodic sweeps.

Conditions and their codes (``subject`` in brackets):

==============================  ==========================================  =========
code                            raised when                                 cleared
==============================  ==========================================  =========
device_offline [device]         last will / ``online: false``               birth
device_stale [device]           no message for ``stale_after_s`` (sweep)    any message
container_full [container]      fill event ``full``                         ``emptied``
container_overflow [container]  fill event ``overflow``                     ``emptied``
container_heat [container]      temperature ≥ ``heat_c``                    < ``heat_clear_c``
sensor_fault [container]        fill event ``sensor_fault``                 next good reading
clock_drift [device]            live message time off by > tolerance        back in tolerance
outbox_backlog [device]         outbox ≥ ``outbox_warn`` and growing        outbox empty
scale_verification_expired      certificate past ``verified_until`` (sweep) renewed
scale_verification_expiring     expires within ``expiring_days`` (sweep)    renewed
config_rejected [device]        config/reported ``applied: false``          a later apply
device:<code> [device]          the device's own alarm channel, ``raised``  ``cleared``
==============================  ==========================================  =========

Deduplicated: while an alarm is open or acknowledged, raising it again only bumps
its counter. An operator acknowledges or clears with their name; ingest and sweeps
clear as ``system``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.alarms import AlarmRecord
from server.ledger.models import Device, DeviceState, Scale
from server.ledger.types import storable_text

SYSTEM = "system"


class AlarmError(ValueError):
    """An alarm operation that cannot be done, with the reason."""


@dataclass(frozen=True)
class AlarmRules:
    stale_after_s: int = 600
    """A device silent this long (no health, no record) is stale."""
    heat_c: float = 60.0
    """Container temperature that raises ``container_heat`` (battery/lamp fire risk)."""
    heat_clear_c: float = 50.0
    clock_tolerance_s: int = 300
    """Device clock off by more than this from the server's receive time."""
    outbox_warn: int = 100
    """Unacked records on a device that, while still growing, raise ``outbox_backlog``."""
    expiring_days: int = 30


class AlarmBook:
    """Raise and clear alarms inside one transaction, with one query for the batch."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self._active: dict[tuple[str, str], AlarmRecord] = {}
        self._loaded: set[str] = set()

    def preload(self, subjects: Iterable[str]) -> None:
        todo = sorted(set(subjects) - self._loaded)
        for start in range(0, len(todo), 500):
            chunk = todo[start : start + 500]
            rows = self.session.scalars(
                select(AlarmRecord).where(
                    AlarmRecord.subject.in_(chunk), AlarmRecord.state != "cleared"
                )
            )
            for row in rows:
                self._active[(row.code, row.subject)] = row
            self._loaded.update(chunk)

    def active(self, code: str, subject: str) -> AlarmRecord | None:
        self.preload([subject])
        return self._active.get((code, subject))

    def raise_(
        self,
        code: str,
        subject: str,
        *,
        subject_kind: str,
        message: str,
        severity: str = "warning",
        device_id: str | None = None,
        site_id: str | None = None,
        source: str = "server",
        at: datetime | None = None,
    ) -> AlarmRecord:
        row = self.active(code, subject)
        at = at or self.now
        if row is not None:
            row.occurrences += 1
            row.last_seen_at = max(row.last_seen_at, at)
            row.message = storable_text(message)[:2000]
            return row
        row = AlarmRecord(
            code=code,
            subject=subject,
            subject_kind=subject_kind,
            device_id=device_id,
            site_id=site_id,
            severity=severity,
            source=source,
            message=storable_text(message)[:2000],
            state="open",
            raised_at=at,
            last_seen_at=at,
            occurrences=1,
        )
        self.session.add(row)
        self._active[(code, subject)] = row
        return row

    def clear(self, code: str, subject: str, *, by: str = SYSTEM) -> AlarmRecord | None:
        row = self.active(code, subject)
        if row is None:
            return None
        row.state, row.cleared_at, row.cleared_by = "cleared", self.now, by
        del self._active[(code, subject)]
        # The partial unique index must see this row as cleared before a new one with
        # the same key is inserted in this transaction.
        self.session.flush()
        return row


# --------------------------------------------------------------------------- operators


def acknowledge(
    session: Session, alarm_id: int, *, by: str, now: datetime | None = None
) -> AlarmRecord:
    row = session.get(AlarmRecord, alarm_id)
    if row is None:
        raise AlarmError(f"alarm {alarm_id} does not exist")
    if row.state != "open":
        raise AlarmError(f"alarm {alarm_id} is {row.state}, not open")
    row.state, row.acknowledged_at, row.acknowledged_by = (
        "acknowledged",
        now or datetime.now(UTC),
        by,
    )
    session.flush()
    return row


def clear(session: Session, alarm_id: int, *, by: str, now: datetime | None = None) -> AlarmRecord:
    row = session.get(AlarmRecord, alarm_id)
    if row is None:
        raise AlarmError(f"alarm {alarm_id} does not exist")
    if row.state == "cleared":
        raise AlarmError(f"alarm {alarm_id} was already cleared by {row.cleared_by}")
    row.state, row.cleared_at, row.cleared_by = "cleared", now or datetime.now(UTC), by
    session.flush()
    return row


def list_alarms(
    session: Session,
    *,
    state: str | None = None,
    active_only: bool = False,
    device_id: str | None = None,
    limit: int = 200,
) -> list[AlarmRecord]:
    query = select(AlarmRecord).order_by(AlarmRecord.raised_at.desc(), AlarmRecord.id.desc())
    if state is not None:
        query = query.where(AlarmRecord.state == state)
    if active_only:
        query = query.where(AlarmRecord.state != "cleared")
    if device_id is not None:
        query = query.where(AlarmRecord.device_id == device_id)
    return list(session.scalars(query.limit(limit)))


def alarm_dict(row: AlarmRecord) -> dict[str, Any]:
    def ts(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": row.id,
        "code": row.code,
        "subject": row.subject,
        "subject_kind": row.subject_kind,
        "device_id": row.device_id,
        "site_id": row.site_id,
        "severity": row.severity,
        "source": row.source,
        "message": row.message,
        "state": row.state,
        "raised_at": ts(row.raised_at),
        "last_seen_at": ts(row.last_seen_at),
        "occurrences": row.occurrences,
        "acknowledged_at": ts(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "cleared_at": ts(row.cleared_at),
        "cleared_by": row.cleared_by,
    }


# --------------------------------------------------------------------------- sweeps


@dataclass
class SweepResult:
    stale: int = 0
    scales_expired: int = 0
    scales_expiring: int = 0


def sweep(session: Session, now: datetime, rules: AlarmRules | None = None) -> SweepResult:
    """Conditions no message announces: silence, and certificates running out."""
    rules = rules or AlarmRules()
    book = AlarmBook(session, now)
    result = SweepResult()
    devices = session.execute(
        select(Device.device_id, Device.site_id, DeviceState.last_seen_at)
        .outerjoin(DeviceState, DeviceState.device_id == Device.device_id)
        .where(Device.status == "approved")
    ).all()
    book.preload(d.device_id for d in devices)
    cutoff = now - timedelta(seconds=rules.stale_after_s)
    for device_id, site_id, last_seen in devices:
        if last_seen is not None and last_seen < cutoff:
            age = int((now - last_seen).total_seconds())
            book.raise_(
                "device_stale",
                device_id,
                subject_kind="device",
                device_id=device_id,
                site_id=site_id,
                message=f"no message for {age} s (last at {last_seen.isoformat()})",
            )
            result.stale += 1
    today = now.date()
    scales = session.execute(
        select(Scale.scale_id, Scale.device_id, Scale.certificate_no, Scale.verified_until)
    ).all()
    book.preload(s.scale_id for s in scales)
    for scale_id, device_id, cert, until in scales:
        if until is None:
            continue
        _scale_alarms(book, scale_id, device_id, cert, until, today, rules)
        if until < today:
            result.scales_expired += 1
        elif until <= today + timedelta(days=rules.expiring_days):
            result.scales_expiring += 1
    session.flush()
    return result


def _scale_alarms(
    book: AlarmBook,
    scale_id: str,
    device_id: str,
    cert: str,
    until: date,
    today: date,
    rules: AlarmRules,
) -> None:
    if until < today:
        book.clear("scale_verification_expiring", scale_id)
        book.raise_(
            "scale_verification_expired",
            scale_id,
            subject_kind="scale",
            device_id=device_id,
            severity="critical",
            message=f"verification certificate {cert or '?'} expired on {until.isoformat()}",
        )
    elif until <= today + timedelta(days=rules.expiring_days):
        book.clear("scale_verification_expired", scale_id)
        book.raise_(
            "scale_verification_expiring",
            scale_id,
            subject_kind="scale",
            device_id=device_id,
            message=f"verification certificate {cert or '?'} expires on {until.isoformat()}",
        )
    else:
        book.clear("scale_verification_expired", scale_id)
        book.clear("scale_verification_expiring", scale_id)
