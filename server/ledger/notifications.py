"""Notification tables: events waiting to be told, who wants to hear of them, and what
was sent.

``notification_events`` is an outbox: rows are only appended (by the collector that
polls holds, statements and alarms, and by producers such as the due list through
``server.notifications.events``), each once per ``(source, source_id)``. Writers take
the ``notification_cursors`` row ``events`` first, so event ids are committed in
order and a subscription's cursor (``sent_through``) can never pass an event that
commits later. A subscription's cursor moves only in the transaction that sent its
message.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger import accounts as _accounts  # noqa: F401 - users, referenced below
from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime


class NotificationEvent(Base):
    __tablename__ = "notification_events"
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="uq_notification_events_source"),
        Index("ix_notification_events_kind_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    """``container_due``, ``container_overflowing``, ``device_silent``, ``hold_opened``,
    ``statement_ready``."""
    subject: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    """One line for the message, without secrets or personal data."""
    region: Mapped[str | None] = mapped_column(String(64), default=None)
    contractor_bin: Mapped[str | None] = mapped_column(String(12), default=None)
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime())


class NotificationCursor(Base):
    """How far the collector has read a source (``holds``, ``statements``, ``alarms``),
    and the ``events`` row every event writer locks first."""

    __tablename__ = "notification_cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)


class NotificationSubscription(Base):
    __tablename__ = "notification_subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    event_kind: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    """The Apprise URL. It may hold a password or token: never shown whole."""
    region: Mapped[str | None] = mapped_column(String(64), default=None)
    contractor_bin: Mapped[str | None] = mapped_column(String(12), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(100))
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    sent_through: Mapped[int] = mapped_column(BigInteger, default=0)
    """Every matching event with an id up to this one has been told (or predates it)."""
    last_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    """Failed attempts since the last success; sets the backoff."""
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class NotificationAddress(Base):
    """The e-mail address an operator recorded for an account: the only place a
    contractor's or auditor's notifications may go."""

    __tablename__ = "notification_addresses"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    recorded_by: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class NotificationDelivery(Base):
    """One message sent, or one attempt that failed."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("notification_subscriptions.id"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ok: Mapped[bool] = mapped_column()
    events: Mapped[int] = mapped_column(Integer)
    first_event_id: Mapped[int] = mapped_column(BigInteger)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text, default="")
