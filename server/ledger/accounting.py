"""Ledger tables of the compensation engine: reference data, holds, statements,
disputes and the hash-chained audit log.

Everything that decides money is either append-only (hold detections, hold
resolutions, audit entries, reference-data versions) or frozen once approved
(statements). Mutable columns are limited to a statement's workflow state and a
dispute's decision, and each of those changes also lands in the audit log.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger import accounts as _accounts  # noqa: F401 - users, referenced below
from server.ledger.models import Base, BigId
from server.ledger.types import DecimalText, UtcDateTime


class ReferenceSet(Base):
    """One version of operator-loaded reference data: the MRP table, the badge map,
    the hold rules. The body is canonical JSON; statements cite ``(kind, version)``."""

    __tablename__ = "reference_sets"
    __table_args__ = (UniqueConstraint("kind", "version", name="uq_reference_sets_kind_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    """``mrp``, ``badges`` or ``hold_rules``."""
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 of ``body``; a later load with the same hash is not a new version."""
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(300), default="")
    loaded_by: Mapped[str] = mapped_column(String(100), default="")
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Hold(Base):
    """A ticket kept out of payment for one reason. Append-only: resolutions are
    separate rows, so the state at any earlier moment can be reconstructed."""

    __tablename__ = "holds"
    __table_args__ = (UniqueConstraint("ticket_id", "reason", name="uq_holds_ticket_reason"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tickets.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rules_version: Mapped[int | None] = mapped_column(Integer, default=None)


class HoldResolution(Base):
    """An operator's decision on a hold: ``release`` (pay) or ``reject`` (never pay)."""

    __tablename__ = "hold_resolutions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    hold_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("holds.id"), index=True)
    decision: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())


class HoldScan(Base):
    """One pass of the hold rules over newly arrived tickets (the scan's watermark)."""

    __tablename__ = "hold_scans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rules_version: Mapped[int] = mapped_column(Integer)
    first_ticket_id: Mapped[int] = mapped_column(BigInteger)
    last_ticket_id: Mapped[int] = mapped_column(BigInteger)
    """Every ticket with an id up to this one has been through the rules."""
    new_holds: Mapped[int] = mapped_column(Integer)
    scanned_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StatementRun(Base):
    """The recorded inputs of one computation; its statements cite it."""

    __tablename__ = "statement_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    inputs: Mapped[str] = mapped_column(Text)
    """Canonical JSON: ticket high-water mark, contract versions, reference-set
    versions, hold high-water marks, rounding policy, engine version."""
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StoredStatement(Base):
    """A contractor's statement for a month: draft -> approved -> paid.

    ``body`` is the canonical JSON whose SHA-256 is ``sha256``; once approved neither
    changes (a correction is a new ``adjustment`` statement pointing at the original).
    """

    __tablename__ = "statements"
    __table_args__ = (Index("ix_statements_contractor_period", "contractor_bin", "period"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("statement_runs.id"))
    contractor_bin: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(7))
    kind: Mapped[str] = mapped_column(String(16))
    """``original`` or ``adjustment``."""
    adjusts_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("statements.id"), default=None
    )
    status: Mapped[str] = mapped_column(String(16))
    """``draft``, ``superseded`` (a newer draft replaced it), ``approved`` or ``paid``."""
    body: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    total_kzt: Mapped[Decimal] = mapped_column(DecimalText())
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    computed_by: Mapped[str | None] = mapped_column(String(100), default=None)
    """The account (user name) whose computation stored this draft; None before 0500."""
    computed_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id"), default=None
    )
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    approved_by: Mapped[str | None] = mapped_column(String(100), default=None)
    approved_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id"), default=None
    )
    evidence_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    """SHA-256 over the stored rows of every ticket in the statement's scope, taken
    at approval (also written to the audit log)."""
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    paid_by: Mapped[str | None] = mapped_column(String(100), default=None)
    paid_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id"), default=None)
    payment_ref: Mapped[str | None] = mapped_column(String(100), default=None)


class Dispute(Base):
    """A contractor's challenge of a ticket or a statement line, and the operator's answer."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contractor_bin: Mapped[str] = mapped_column(String(12), index=True)
    statement_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("statements.id"), default=None
    )
    ticket_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("tickets.id"), default=None
    )
    line: Mapped[str | None] = mapped_column(String(200), default=None)
    """``contract_id@vN:stage`` of the disputed statement line."""
    comment: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(100))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), default="open")
    """``open``, ``accepted`` or ``rejected``."""
    decided_by: Mapped[str | None] = mapped_column(String(100), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    decision_reason: Mapped[str | None] = mapped_column(Text, default=None)


class AuditEntry(Base):
    """One state change. ``hash`` = SHA-256 of the canonical entry including
    ``prev_hash``, so an edited, removed or reordered entry breaks the chain."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200))
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row every append locks: serialises writers on PostgreSQL and keeps
    the head hash that ``audit verify`` compares with the end of the chain."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class BankAccount(Base):
    """A contractor's bank account for payments, one version per change (append-only):
    the newest row of a BIN is its account. Every change is also in the audit log."""

    __tablename__ = "bank_accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contractor_bin: Mapped[str] = mapped_column(String(12), index=True)
    iban: Mapped[str] = mapped_column(String(34))
    """Without spaces, upper case; checked when set (Kazakh format: KZ, 20 characters)."""
    bic: Mapped[str] = mapped_column(String(11), default="")
    bank_name: Mapped[str] = mapped_column(String(200), default="")
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime] = mapped_column(UtcDateTime())
