"""The alarm table: one row per occurrence of a condition, deduplicated while open.

At most one row per ``(code, subject)`` is not ``cleared`` (a partial unique index
enforces it on both databases); raising it again bumps ``occurrences`` and
``last_seen_at`` instead of adding a row. Logic lives in :mod:`server.fleet.alarms`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime


class AlarmRecord(Base):
    __tablename__ = "alarms"
    __table_args__ = (
        Index(
            "uq_alarms_active",
            "code",
            "subject",
            unique=True,
            sqlite_where=text("state != 'cleared'"),
            postgresql_where=text("state != 'cleared'"),
        ),
        Index("ix_alarms_state_raised", "state", "raised_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128))
    """What the alarm is about: a device id, container id or scale id."""
    subject_kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    site_id: Mapped[str | None] = mapped_column(String(64), default=None)
    severity: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    """``server`` (derived by ingest or a sweep) or ``device`` (the alarm channel)."""
    message: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    """``open`` -> ``acknowledged`` -> ``cleared``; a cleared alarm never reopens."""
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100), default=None)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    cleared_by: Mapped[str | None] = mapped_column(String(100), default=None)
