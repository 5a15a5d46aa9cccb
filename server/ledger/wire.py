"""Ledger tables of the wire's integrity: message order per device, acks to publish.

``device_seqs`` keeps, per device and key (``status``, ``health``, ``alarm:<code>``),
the highest ``seq`` of a signed message ingest has applied, so a replayed older
message (an old "cleared", an old birth) changes nothing. ``pending_acks`` holds
acks written in the same transaction as the ledger rows they answer by a process
that has no MQTT connection (an operator re-processing a dead letter from the pages,
the API or the CLI); the ingest workers publish them and then delete them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime


class DeviceSeq(Base):
    __tablename__ = "device_seqs"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    """``status``, ``health`` or ``alarm:<code>``."""
    seq: Mapped[int] = mapped_column(BigInteger)


class PendingAck(Base):
    __tablename__ = "pending_acks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(256))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
