"""The ticket columns a device's signature backs.

A ticket row copies fields out of the signed weighing for querying. Ingest writes them
from here, and the evidence page and the evidence hold compare stored rows against the
same mapping, so a column added to tickets is stored and checked in one place.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from edge.protocol import Weighing, kg_to_grams

#: Every ``tickets`` column whose value comes from the signed payload.
SIGNED_COLUMNS: Final = (
    "device_id",
    "seq",
    "event_id",
    "boot_id",
    "weighed_at",
    "time_synced",
    "mono_ms",
    "site_id",
    "scale_id",
    "category",
    "badge",
    "gross_g",
    "tare_g",
    "net_g",
    "unit",
    "raw",
    "prev_hash",
    "hash",
    "sig",
    "config_revision",
)


def signed_columns(w: Weighing, weighed_at: datetime | None = None) -> dict[str, Any]:
    """The column values a ticket stores for ``w`` (``weighed_at`` if already parsed)."""
    return {
        "device_id": w.device_id,
        "seq": w.seq,
        "event_id": w.event_id,
        "boot_id": w.boot_id,
        "weighed_at": w.weighed_at if weighed_at is None else weighed_at,
        "time_synced": w.time_synced,
        "mono_ms": w.mono_ms,
        "site_id": w.site_id,
        "scale_id": w.scale_id,
        "category": w.category,
        "badge": w.badge,
        "gross_g": kg_to_grams(w.gross_kg),
        "tare_g": kg_to_grams(w.tare_kg),
        "net_g": kg_to_grams(w.net_kg),
        "unit": w.unit,
        "raw": json.dumps(list(w.raw)),
        "prev_hash": w.prev_hash,
        "hash": w.hash,
        "sig": w.sig,
        "config_revision": w.config_revision,
    }


def mismatches(stored: Any, w: Weighing) -> list[tuple[str, Any, Any]]:
    """``(column, stored, signed)`` for each column of a ticket row (any object with
    the columns as attributes) that is not what the device signed."""
    return [
        (name, getattr(stored, name), value)
        for name, value in signed_columns(w).items()
        if getattr(stored, name) != value
    ]
