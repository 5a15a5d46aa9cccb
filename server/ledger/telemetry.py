"""Ledger tables of the telemetry path: the durable spool, fill dedupe and rollups.

``telemetry_spool`` holds line protocol written in the *same transaction* as the
ingest batch, so once a device has its ack the points are on disk; the InfluxDB
writer deletes a row only from its success callback. ``fill_seen`` makes fill
readings idempotent (a resend is acked as a duplicate and never counted twice in a
rollup); rows older than the devices' fill time-to-live are pruned.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime


class TelemetrySpool(Base):
    __tablename__ = "telemetry_spool"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    """Line protocol, one point per line, millisecond timestamps."""
    points: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    """When any worker may (re)send it: set past the writer's own retry window."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class FillSeen(Base):
    __tablename__ = "fill_seen"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    hash: Mapped[str | None] = mapped_column(String(64), default=None)
    """The reading's hash (acks name it); None on rows stored before readings had one."""


class FillRollup(Base):
    """Per container and UTC hour: count, sum, min, max and last fill (hundredths of %)."""

    __tablename__ = "fill_rollups"
    __table_args__ = (Index("ix_fill_rollups_hour", "hour"),)

    container_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    samples: Mapped[int] = mapped_column(Integer)
    sum_centi: Mapped[int] = mapped_column(BigInteger)
    min_centi: Mapped[int] = mapped_column(Integer)
    max_centi: Mapped[int] = mapped_column(Integer)
    last_centi: Mapped[int] = mapped_column(Integer)
    last_at: Mapped[datetime] = mapped_column(UtcDateTime())
