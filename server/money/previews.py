"""Preview allocations kept for reuse, by exactly what they were computed from.

An allocation is deterministic in its inputs (:class:`~server.money.inputs.Inputs`:
ticket, hold and resolution high-water marks, contract versions, MRP table and badge
map versions, rounding policy, engine), the sites' regions and the last day it runs
to. Tickets, holds and resolutions are append-only and every reference table is
versioned, so two computations with equal keys give equal allocations: the pages that
read the current ledger (contracts, a contractor's deliveries, statement previews)
reuse the last few instead of re-reading a year of tickets per request. A new ticket,
hold, resolution, contract version or reference version changes the key (and
the ledger's fingerprint: its last ticket's hash and its audit head), so nothing
stale is ever served. Recorded and verified statements never come from here.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.accounting import AuditHead
from server.ledger.models import Ticket

if TYPE_CHECKING:
    from server.money.allocation import Allocation
    from server.money.badges import BadgeMap
    from server.money.mrp import MrpTable

    Kept = tuple[Allocation, MrpTable | None, BadgeMap]

Key = tuple[str, date, str, str]
"""(inputs SHA-256, last day allocated, regions digest, ledger fingerprint)."""


def regions_digest(regions: Mapping[str, str]) -> str:
    text = "\n".join(f"{site}\t{region}" for site, region in sorted(regions.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(session: Session, ticket_high_water: int) -> str:
    """The ledger this is: the hash of the last ticket counted and the audit log's head.
    Equal high-water marks in two different ledgers (a restored copy, another
    database behind the same process) still give different keys."""
    last = session.scalar(select(Ticket.hash).where(Ticket.id == ticket_high_water))
    head = session.scalar(select(AuditHead.hash).where(AuditHead.id == 1))
    return f"{last or ''}:{head or ''}"


class Previews:
    """A small least-recently-used map, safe across the server's worker threads."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._kept: OrderedDict[Key, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Kept | None:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: Key, value: Kept) -> None:
        with self._lock:
            self._kept[key] = value
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


PREVIEWS: Final = Previews()
