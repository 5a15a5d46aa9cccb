"""Device history (who did what, when), desired/reported configuration, signed revisions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime


class DeviceHistory(Base):
    """Every registry change of a device: registered, approved, revoked, credentials, scale."""

    __tablename__ = "device_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    detail: Mapped[str] = mapped_column(Text, default="")


class DeviceConfig(Base):
    """The configuration revision the server wants and the one the device reported."""

    __tablename__ = "device_config"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    desired_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    desired_settings: Mapped[str | None] = mapped_column(Text, default=None)
    desired_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    desired_by: Mapped[str | None] = mapped_column(String(100), default=None)
    reported_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    reported_applied: Mapped[bool | None] = mapped_column(Boolean, default=None)
    reported_reason: Mapped[str | None] = mapped_column(Text, default=None)
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class DeviceConfigRevision(Base):
    """A desired configuration revision as the server signed it: kept for ever.

    ``settings`` is the canonical JSON the signature covers (with ``device_id``,
    ``revision`` and ``issued_at``); ``public_key`` is the server key that signed it.
    Revisions only go up per device. A ticket's ``config_revision`` points here.
    """

    __tablename__ = "device_config_revisions"
    __table_args__ = (UniqueConstraint("device_id", "revision", name="uq_device_config_revisions"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    issued_by: Mapped[str] = mapped_column(String(100))
    settings: Mapped[str] = mapped_column(Text)
    sig: Mapped[str] = mapped_column(String(88))
    public_key: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class DeviceHealth(Base):
    """Each health report a device sent, in short, for its page's history (the full
    series goes to InfluxDB); pruned after ``health_history_days`` by the ingest's
    maintenance."""

    __tablename__ = "device_health"
    # Every count is as the protocol allows it (below 2^53): a wild report is stored,
    # not a failed batch.
    __table_args__ = (Index("ix_device_health_device_measured", "device_id", "measured_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime())
    """The device's time of the report."""
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    outbox_depth: Mapped[int] = mapped_column(BigInteger)
    oldest_unacked_s: Mapped[int] = mapped_column(BigInteger)
    reconnects: Mapped[int] = mapped_column(BigInteger)
    serial_errors: Mapped[int] = mapped_column(BigInteger)
    uptime_s: Mapped[int] = mapped_column(BigInteger)
    disk_free_mb: Mapped[int | None] = mapped_column(BigInteger, default=None)
