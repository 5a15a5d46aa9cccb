"""Tickets brought in by hand: rows of a weighbridge export and paper tickets.

A manual ticket is an ordinary row of ``tickets`` — so holds, allocation, statements
and the evidence digest treat it like any other — in a namespace of its own: its
``device_id`` is ``manual:<site_id>``, which no device can have (device ids match
``edge.protocol.DEVICE_ID_RE``, without a colon), and its ``seq`` counts the site's
manual tickets. So ``(device_id, seq)`` never collides with a device's.

What backs it is not a device signature but a record of who entered it and from
what: ``payload`` is the canonical JSON of that record (every column of the ticket
row, the source file and line or the form and the attachment's SHA-256, who and
when), ``hash`` is its SHA-256 and ``prev_hash`` the hash of the site's previous
manual ticket, so the site's manual tickets form a hash chain like a device's journal
(``sig`` stays empty). ``manual_tickets`` indexes the record for queries and keeps
``(site_id, ticket_no)`` unique: importing the same ticket again adds nothing.
Scans and photos are stored once, content-addressed, in ``manual_attachments``.
Both tables are append-only (database triggers, migration 0610).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.audit import canonical_json
from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime

MANUAL_PREFIX: Final = "manual:"
MANUAL_SCALE: Final = "manual"
"""The ``scale_id`` of a manual ticket: no scale of the registry weighed it."""
RECORD_VERSION: Final = 1
MAX_SITE_ID: Final = 64 - len(MANUAL_PREFIX)
"""Longest site id whose manual namespace still fits ``tickets.device_id``."""


def manual_device_id(site_id: str) -> str:
    return MANUAL_PREFIX + site_id


def is_manual(device_id: str) -> bool:
    return device_id.startswith(MANUAL_PREFIX)


class ManualTicket(Base):
    """Who entered a manual ticket, from what. Append-only."""

    __tablename__ = "manual_tickets"
    __table_args__ = (
        UniqueConstraint("site_id", "ticket_no", name="uq_manual_tickets_site_ticket"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.id"), unique=True)
    site_id: Mapped[str] = mapped_column(String(64))
    ticket_no: Mapped[str] = mapped_column(String(64))
    """The weighbridge's or the paper ticket's own number."""
    source: Mapped[str] = mapped_column(String(16))
    """``import`` (a weighbridge export) or ``form`` (a paper ticket typed in)."""
    source_name: Mapped[str] = mapped_column(String(300))
    """The file's name, or ``form``."""
    source_line: Mapped[int | None] = mapped_column(Integer, default=None)
    attachment_sha256: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("manual_attachments.sha256"), default=None
    )
    vehicle_plate: Mapped[str | None] = mapped_column(String(32), default=None)
    contractor_bin: Mapped[str | None] = mapped_column(String(12), default=None)
    entered_by: Mapped[str] = mapped_column(String(100))
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ManualAttachment(Base):
    """A scan or photo of a paper ticket, stored once under its SHA-256. Append-only."""

    __tablename__ = "manual_attachments"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    stored_by: Mapped[str] = mapped_column(String(100))
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime())


def event_id(site_id: str, ticket_no: str) -> str:
    """A manual ticket's ``event_id``: the same site and number always give the same."""
    return hashlib.sha256(f"manual\x1f{site_id}\x1f{ticket_no}".encode()).hexdigest()


#: The ``tickets`` columns a manual record states (the rest are fixed or derived).
RECORD_COLUMNS: Final = (
    "device_id",
    "seq",
    "event_id",
    "weighed_at",
    "site_id",
    "scale_id",
    "category",
    "gross_g",
    "tare_g",
    "net_g",
    "prev_hash",
)


def payload(record: dict[str, Any]) -> bytes:
    """The canonical bytes of a record (what ``hash`` is taken over)."""
    return canonical_json(record).encode()


def columns(record: dict[str, Any], weighed_at: datetime) -> dict[str, Any]:
    """The ticket row's values for a record (``weighed_at`` parsed by the caller)."""
    body = payload(record)
    return {
        "device_id": record["device_id"],
        "seq": record["seq"],
        "event_id": record["event_id"],
        "boot_id": "manual",
        "weighed_at": weighed_at,
        "time_synced": True,
        "mono_ms": 0,
        "site_id": record["site_id"],
        "scale_id": record["scale_id"],
        "category": record["category"],
        "badge": None,
        "gross_g": record["gross_g"],
        "tare_g": record["tare_g"],
        "net_g": record["net_g"],
        "unit": "kg",
        "raw": "[]",
        "prev_hash": record["prev_hash"],
        "hash": hashlib.sha256(body).hexdigest(),
        "sig": "",
        "payload": body,
        "chain_ok": True,
        "config_revision": None,
    }


def problem(row: Any) -> str | None:
    """Why a stored manual ticket row is not what its record says, or None."""
    body = bytes(row.payload)
    if hashlib.sha256(body).hexdigest() != row.hash:
        return "manual record does not match its SHA-256"
    try:
        record = json.loads(body)
        stated = {name: record[name] for name in RECORD_COLUMNS if name != "weighed_at"}
        weighed_at = datetime.fromisoformat(record["weighed_at"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"manual record does not read ({type(exc).__name__}: {exc})"
    differ = [name for name, value in stated.items() if getattr(row, name) != value]
    if row.weighed_at != weighed_at:
        differ.append("weighed_at")
    if differ:
        return f"stored {', '.join(sorted(differ))} differ from the manual record"
    return None
