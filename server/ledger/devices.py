"""Device history (who did what, when), desired/reported configuration, signed revisions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
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
