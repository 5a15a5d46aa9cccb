"""Preview computations kept for reuse, by exactly what they were computed from.

An allocation is deterministic in its inputs (:class:`~server.money.inputs.Inputs`:
ticket, hold and resolution high-water marks, contract versions, MRP table and badge
map versions, rounding policy, engine), the sites' regions and the last day it runs
to. Tickets, holds and resolutions are append-only and every reference table is
versioned, so two computations with equal keys give equal allocations: the pages that
read the current ledger (contracts, a contractor's deliveries, statement previews)
reuse the last few instead of re-reading a year of tickets per request. Recorded and
verified statements never come from here.

Two levels:

* :data:`PREVIEWS` keeps allocations by their full inputs (:func:`statements.compute`
  reads the inputs, then looks the allocation up).
* :func:`remember` keeps what is built *from* previews (a contractor's overview, the
  contracts' standing) by the ledger's :func:`stamp`: one small query over what the
  inputs are made of — the last ticket (id and hash), the last hold and resolution,
  the audit log's head (every contract import, reference table version, hold scan and
  statement act appends to it) and the sites' regions. Any change there changes the
  stamp, so nothing stale is ever served; the first request after a change pays for
  the computation.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.ledger.accounting import AuditHead, Hold, HoldResolution
from server.ledger.models import Site, Ticket

if TYPE_CHECKING:
    from server.money.allocation import Allocation
    from server.money.badges import BadgeMap
    from server.money.mrp import MrpTable

    Kept = tuple[Allocation, MrpTable | None, BadgeMap]

Key = tuple[str, date, str, str]
"""(inputs SHA-256, last day allocated, regions digest, ledger fingerprint)."""
T = TypeVar("T")


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


def stamp(session: Session) -> str:
    """What every preview of the current ledger depends on, in one round trip (plus
    the sites' regions)."""
    last_ticket = select(func.max(Ticket.id)).scalar_subquery()
    row = session.execute(
        select(
            last_ticket,
            select(Ticket.hash).where(Ticket.id == last_ticket).scalar_subquery(),
            select(func.max(Hold.id)).scalar_subquery(),
            select(func.max(HoldResolution.id)).scalar_subquery(),
            select(AuditHead.seq).where(AuditHead.id == 1).scalar_subquery(),
            select(AuditHead.hash).where(AuditHead.id == 1).scalar_subquery(),
        )
    ).one()
    regions = dict(session.execute(select(Site.site_id, Site.region)).all())
    return "|".join(str(v) for v in row) + "|" + regions_digest(regions)


class Previews:
    """A small least-recently-used map, safe across the server's worker threads."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._kept: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
            return found

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._kept[key] = value
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


PREVIEWS: Final = Previews()
"""Allocations by their full inputs: :data:`Key` -> ``Kept``."""
BUILT: Final = Previews(size=64)
"""What pages build from previews, by (stamp, what)."""


def remember(session: Session, what: Hashable, build: Callable[[], T]) -> T:
    """``build()``, or what it gave for ``what`` while the ledger's stamp is unchanged.
    ``what`` names everything else the result depends on (scope, month, options)."""
    key = (stamp(session), what)
    found = BUILT.get(key)
    if found is None:
        found = build()
        BUILT.put(key, found)
    return cast(T, found)
