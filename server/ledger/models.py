"""Ledger tables.

Weights are integer grams (exact, summable in SQL); money, rates and caps are
``DecimalText``; times are UTC. Tickets keep the exact payload bytes the device
signed, so an auditor can re-verify any ticket down to the raw scale frame.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from server.ledger.types import DecimalText, UtcDateTime

# Deterministic constraint names, so migrations are the same on every database.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY, so big ids are INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Site(Base):
    """A reception point, weighbridge or container location."""

    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="reception_point")


class Device(Base):
    """A provisioned edge device and the key its weighings must be signed with."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.site_id"))
    kind: Mapped[str] = mapped_column(String(32), default="reception_point")
    public_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    approved_by: Mapped[str | None] = mapped_column(String(100), default=None)
    """Who approved the device (operator login or "cli:<user>")."""
    revoked_by: Mapped[str | None] = mapped_column(String(100), default=None)
    revoke_reason: Mapped[str | None] = mapped_column(Text, default=None)
    mqtt_password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    """Mosquitto PBKDF2-SHA512 hash of the device's broker password; the password itself
    is shown once when made and never stored."""


class Ticket(Base):
    """One weighing ticket as received and verified. Append-only."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_tickets_device_seq"),
        Index("ix_tickets_weighed_at", "weighed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    boot_id: Mapped[str] = mapped_column(String(64))
    weighed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    time_synced: Mapped[bool] = mapped_column(Boolean)
    mono_ms: Mapped[int] = mapped_column(BigInteger)
    site_id: Mapped[str] = mapped_column(String(64))
    scale_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))
    badge: Mapped[str | None] = mapped_column(String(64))
    gross_g: Mapped[int] = mapped_column(BigInteger)
    tare_g: Mapped[int] = mapped_column(BigInteger)
    net_g: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(8))
    raw: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    sig: Mapped[str] = mapped_column(String(88))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    chain_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    """True: prev_hash matches the previous ticket; False: fork; None: predecessor unseen."""
    config_revision: Mapped[int | None] = mapped_column(Integer, default=None)
    """The signed remote configuration revision the device recorded it under (signed)."""


class DeadLetter(Base):
    """A payload that failed validation: kept byte for byte with the reason (up to the
    size limit; beyond it, its size, SHA-256 and first bytes)."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    topic: Mapped[str] = mapped_column(String(256))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    resolution: Mapped[str | None] = mapped_column(Text, default=None)
    payload_size: Mapped[int | None] = mapped_column(Integer, default=None)
    """Size of the payload as received; larger than ``payload`` when only its first
    bytes were kept (a payload over the size limit is never stored whole)."""
    payload_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    """SHA-256 of the payload as received."""


class DeviceState(Base):
    """Latest availability and health per device (birth/will, health messages)."""

    __tablename__ = "device_state"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    online: Mapped[bool | None] = mapped_column(Boolean, default=None)
    boot_id: Mapped[str | None] = mapped_column(String(64), default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    last_health: Mapped[str | None] = mapped_column(Text, default=None)
    health_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    """Device time of the latest health message."""
    outbox_depth: Mapped[int | None] = mapped_column(Integer, default=None)
    clock_offset_ms: Mapped[int | None] = mapped_column(BigInteger, default=None)
    """Device time minus receive time of the latest live message (health, birth)."""


class ContainerState(Base):
    """Latest fill level per container, for the pages (history lives in InfluxDB)."""

    __tablename__ = "container_state"

    container_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64))
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime())
    fill_pct: Mapped[Decimal] = mapped_column(DecimalText())
    distance_mm: Mapped[int] = mapped_column(Integer)
    last_event: Mapped[str | None] = mapped_column(String(16), default=None)


class Contract(Base):
    """An awarded lot. Each amendment is a new version; statements cite the version."""

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("contract_id", "version", name="uq_contracts_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    tender_id: Mapped[str] = mapped_column(String(64))
    lot: Mapped[str] = mapped_column(String(32))
    contractor_bin: Mapped[str] = mapped_column(String(12), index=True)
    contractor_name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(32))
    regions: Mapped[str] = mapped_column(Text, default="")
    """Region names joined by ``;``; empty means "the listed sites only"."""
    site_ids: Mapped[str] = mapped_column(Text, default="")
    """Site ids joined by ``;``."""
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    """Inclusive."""
    cap_t: Mapped[Decimal] = mapped_column(DecimalText())
    rate: Mapped[Decimal] = mapped_column(DecimalText())
    rate_unit: Mapped[str] = mapped_column(String(8), default="KZT/t")
    budget_cap_kzt: Mapped[Decimal | None] = mapped_column(DecimalText(), default=None)
    source: Mapped[str] = mapped_column(String(300), default="")
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime())

    @property
    def region_list(self) -> tuple[str, ...]:
        return tuple(r for r in self.regions.split(";") if r)

    @property
    def site_list(self) -> tuple[str, ...]:
        return tuple(s for s in self.site_ids.split(";") if s)


class Scale(Base):
    """A scale and its legal verification (поверка): weighings after expiry are held."""

    __tablename__ = "scales"

    scale_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.device_id"), index=True)
    model: Mapped[str] = mapped_column(String(100), default="")
    serial_no: Mapped[str] = mapped_column(String(100), default="")
    certificate_no: Mapped[str] = mapped_column(String(100), default="")
    verified_until: Mapped[date | None] = mapped_column(Date, default=None)
    """Last day the verification certificate is valid; None: no certificate on file."""


class FillEvent(Base):
    """Every fill event a container reported (full, emptied, overflow, sensor fault).

    Pickups ("emptied") are matched against container weighings by the payment rules.
    """

    __tablename__ = "fill_events"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_fill_events_device_seq"),
        Index("ix_fill_events_container_at", "container_id", "measured_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    container_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))
    measured_at: Mapped[datetime] = mapped_column(UtcDateTime())
    fill_pct: Mapped[Decimal] = mapped_column(DecimalText())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
