"""The places table: where reception points and containers stand, and who serves them.

A reception point's place is keyed by its site id (``sites``); a container's by its
container id (the id its level sensor reports, ``container_state``). Coordinates are
WGS 84 degrees. Logic (import, checks, edits, the map's GeoJSON) lives in
:mod:`server.logistics.places`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.ledger.models import Base
from server.ledger.types import UtcDateTime


class Place(Base):
    __tablename__ = "places"

    place_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    """``reception_point`` or ``container``."""
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(64), index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    capacity_l: Mapped[int | None] = mapped_column(Integer, default=None)
    """A container's volume in litres (None for a reception point)."""
    category: Mapped[str | None] = mapped_column(String(64), default=None)
    """The waste category a container takes (None: a reception point takes several)."""
    contractor_bin: Mapped[str | None] = mapped_column(String(12), default=None, index=True)
    """The contractor (BIN) that empties the container or runs the reception point."""
    site_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    """A container's reception point: where the weighings after its pickups happen."""
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(100))
