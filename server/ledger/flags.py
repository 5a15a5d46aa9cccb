"""Ticket flags and reversals: what is known about a ticket after it was stored.

Tickets are append-only, so anything learnt later lives here: a hash-chain gap that
closes when the missing predecessor arrives, a fork, a device clock running ahead or
claiming a time before the device was registered.
A flag is *open* until cleared (by ingest when the chain is proven, or by an
operator, with who and why). Payments hold tickets with open flags.

A correction is never an UPDATE: a :class:`TicketReversal` (append-only, one per
ticket) takes the ticket out of every later computation and says who and why; a
corrected weighing, if any, arrives as a new ticket.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.ledger.models import Base, BigId, Ticket
from server.ledger.types import UtcDateTime


class FlagCode(StrEnum):
    CHAIN_GAP = "chain_gap"
    """The previous record of the device's chain has not arrived (yet)."""
    CHAIN_FORK = "chain_fork"
    """``prev_hash`` does not match the stored predecessor: records were altered or lost."""
    CLOCK_AHEAD = "clock_ahead"
    """The weighing claims a time later than the server received it (beyond tolerance)."""
    CLOCK_BEFORE_REGISTRATION = "clock_before_registration"
    """The weighing claims a time before its device was registered (beyond tolerance):
    a clock reset to 1970, or a record made elsewhere. Payments hold such a ticket."""


class TicketFlag(Base):
    __tablename__ = "ticket_flags"
    __table_args__ = (Index("ix_ticket_flags_open", "ticket_id", "cleared_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    cleared_by: Mapped[str | None] = mapped_column(String(100), default=None)
    clear_reason: Mapped[str | None] = mapped_column(Text, default=None)


class TicketReversal(Base):
    """A reversing entry: the ticket no longer counts. Append-only, one per ticket."""

    __tablename__ = "ticket_reversals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    reversed_by: Mapped[str] = mapped_column(String(100))
    reversed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LedgerError(ValueError):
    """A correction that cannot be made, with the reason."""


def open_flags(session: Session, ticket_ids: Iterable[int]) -> dict[int, list[str]]:
    """Open flag codes per ticket id (tickets without open flags are absent)."""
    ids = list(ticket_ids)
    found: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(ids), 1000):
        rows = session.execute(
            select(TicketFlag.ticket_id, TicketFlag.code).where(
                TicketFlag.ticket_id.in_(ids[start : start + 1000]),
                TicketFlag.cleared_at.is_(None),
            )
        )
        for ticket_id, code in rows:
            found[ticket_id].append(code)
    return dict(found)


def clear_flag(
    session: Session, flag_id: int, *, by: str, reason: str, now: datetime | None = None
) -> TicketFlag:
    flag = session.get(TicketFlag, flag_id)
    if flag is None:
        raise LedgerError(f"ticket flag {flag_id} does not exist")
    if flag.cleared_at is not None:
        raise LedgerError(f"ticket flag {flag_id} was already cleared by {flag.cleared_by}")
    flag.cleared_at, flag.cleared_by, flag.clear_reason = now or datetime.now(UTC), by, reason
    session.flush()
    return flag


def reverse_ticket(
    session: Session, ticket_id: int, *, by: str, reason: str, now: datetime | None = None
) -> TicketReversal:
    """Record a reversing entry for a ticket; the ticket row itself is never touched."""
    if not reason.strip():
        raise LedgerError("a reversal needs a reason")
    if session.get(Ticket, ticket_id) is None:
        raise LedgerError(f"ticket {ticket_id} does not exist")
    if session.scalar(select(TicketReversal.id).where(TicketReversal.ticket_id == ticket_id)):
        raise LedgerError(f"ticket {ticket_id} is already reversed")
    entry = TicketReversal(
        ticket_id=ticket_id, reason=reason, reversed_by=by, reversed_at=now or datetime.now(UTC)
    )
    session.add(entry)
    session.flush()
    return entry


def reversed_ids(session: Session) -> set[int]:
    """Ids of tickets that a reversing entry took out of the ledger's sums."""
    return set(session.scalars(select(TicketReversal.ticket_id)))
