"""Stored route plans: what ``epr-server routes plan`` computed, for the driver's list
and the map. The plan is kept whole as canonical JSON (vehicles, stops with their
coordinates and order, distances), so a later change of the places does not change a
plan already handed to a driver."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.models import Base, BigId
from server.ledger.types import UtcDateTime


class RoutePlan(Base):
    __tablename__ = "route_plans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    plan_date: Mapped[date] = mapped_column(Date, index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    contractor_bin: Mapped[str | None] = mapped_column(String(12), index=True, default=None)
    """The contractor whose trucks drive it (who may see it), or None: operators only."""
    method: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    """Canonical JSON: ``{"routes": [...], "unserved": [...], "vehicles": [...]}``."""
    total_m: Mapped[int] = mapped_column(BigInteger)
    stops: Mapped[int] = mapped_column(Integer)
    unserved: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(100))
