"""Proof of pickup and the monthly mass balance.

**Pickups.** A container's level sensor signs every reading; ingest keeps the signed
``emptied`` events in ``fill_events`` (``server/fleet/ingest/fill.py``). A pickup is
one such event of a container on the places table: it is linked to the contractor the
place names and to the weighings that follow it at the container's reception point
(``places.site_id``) — tickets of the container's category weighed within
``pickup_window_h`` after the event, each ticket to the latest pickup before it (so a
truck that empties five containers and then weighs once links that ticket to its
last stop's pickup, and the month's sums stay right). Reversed tickets do not count.

**Balance.** Per contractor, category and month (local time): the emptied volume
(capacity × the fall in level from the highest reading in the hours before the event
to the level after it) times the category's bulk density (:mod:`densities`) is the
mass the contractor should have brought to the scale; the linked tickets' net weight
is what it did. Weighed more than the estimate × (1 + tolerance) is suspicious —
waste from elsewhere passed off as the containers' — and :func:`hold_surplus` holds
the latest linked tickets covering the surplus (reason ``mass_balance``, through
:mod:`server.money.holds`) for an operator to release or reject.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.ledger import audit
from server.ledger.flags import TicketReversal
from server.ledger.models import FillEvent, Ticket
from server.ledger.places import Place
from server.ledger.telemetry import FillRollup
from server.logistics.densities import Densities
from server.money.amounts import LOCAL_TZ
from server.money.holds import Finding, record
from server.money.inputs import parse_period
from server.people.accounts import Scope

REASON: Final = "mass_balance"
BEFORE_H: Final = 3
"""Hours before an emptied event searched for the level it fell from."""


@dataclass(frozen=True, slots=True)
class Pickup:
    event_id: int
    container_id: str
    contractor_bin: str
    category: str
    site_id: str | None
    at: datetime
    litres: Decimal
    estimate_g: int
    tickets: tuple[int, ...] = ()


@dataclass(slots=True)
class Balance:
    contractor_bin: str
    category: str
    period: str
    pickups: int = 0
    litres: Decimal = Decimal(0)
    estimate_g: int = 0
    weighed_g: int = 0
    tickets: list[tuple[int, datetime, int]] = field(default_factory=list)
    """Linked tickets: (id, weighed at, net grams)."""

    def allowed_g(self, tolerance_pct: Decimal) -> int:
        return int(self.estimate_g * (1 + tolerance_pct / 100))

    def surplus_g(self, tolerance_pct: Decimal) -> int:
        return max(self.weighed_g - self.allowed_g(tolerance_pct), 0)

    @property
    def ratio(self) -> Decimal | None:
        """Weighed ÷ estimated (None without an estimate)."""
        if self.estimate_g <= 0:
            return None
        return (Decimal(self.weighed_g) / Decimal(self.estimate_g)).quantize(Decimal("0.01"))

    def surplus_tickets(self, tolerance_pct: Decimal) -> list[int]:
        """The latest linked tickets whose weight covers the surplus."""
        surplus = self.surplus_g(tolerance_pct)
        held: list[int] = []
        for ticket_id, _, net_g in sorted(self.tickets, key=lambda t: (t[1], t[0]), reverse=True):
            if surplus <= 0:
                break
            held.append(ticket_id)
            surplus -= net_g
        return held


def _window(period: str) -> tuple[datetime, datetime]:
    first, last = parse_period(period)
    start = datetime.combine(first, time(), LOCAL_TZ).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), LOCAL_TZ).astimezone(UTC)
    return start, end


def pickups(
    session: Session, period: str, densities: Densities, *, scope: Scope | None = None
) -> list[Pickup]:
    """The month's pickups with their estimated mass and linked tickets."""
    start, end = _window(period)
    return pickups_between(session, start, end, densities, scope=scope)


def pickups_between(
    session: Session,
    start: datetime,
    end: datetime,
    densities: Densities,
    *,
    scope: Scope | None = None,
    container_id: str | None = None,
) -> list[Pickup]:
    """Pickups from ``start`` (inclusive) to ``end``, of one container if named."""
    window = timedelta(hours=densities.pickup_window_h)
    query = select(Place).where(Place.kind == "container", Place.contractor_bin.is_not(None))
    if scope is not None and scope.contractor_bin:
        query = query.where(Place.contractor_bin == scope.contractor_bin)
    if container_id is not None:
        query = query.where(Place.place_id == container_id)
    places = {p.place_id: p for p in session.scalars(query)}
    if not places:
        return []
    events = [
        e
        for i in range(0, len(places), 500)
        for e in session.scalars(
            select(FillEvent).where(
                FillEvent.container_id.in_(list(places)[i : i + 500]),
                FillEvent.event == "emptied",
                FillEvent.measured_at >= start,
                FillEvent.measured_at < end,
            )
        )
    ]
    events.sort(key=lambda e: (e.measured_at, e.id))
    found: list[Pickup] = []
    for e in events:
        place = places[e.container_id]
        hour = e.measured_at.replace(minute=0, second=0, microsecond=0)
        before = session.scalar(
            select(func.max(FillRollup.max_centi)).where(
                FillRollup.container_id == e.container_id,
                FillRollup.hour >= hour - timedelta(hours=BEFORE_H),
                FillRollup.hour <= hour,
            )
        )
        fell = max(Decimal(before or 0) / 100 - e.fill_pct, Decimal(0))
        litres = (Decimal(place.capacity_l or 0) * min(fell, Decimal(100)) / 100).quantize(
            Decimal("0.1")
        )
        density = densities.kg_per_litre.get(place.category or "", Decimal(0))
        found.append(
            Pickup(
                e.id,
                e.container_id,
                place.contractor_bin or "",
                place.category or "",
                place.site_id,
                e.measured_at,
                litres,
                int(litres * density * 1000),
            )
        )
    return _link(session, found, window)


def _link(session: Session, found: list[Pickup], window: timedelta) -> list[Pickup]:
    """Each ticket at a pickup's reception point and category within the window goes
    to the latest pickup before it."""
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, p in enumerate(found):
        if p.site_id:
            by_key[(p.site_id, p.category)].append(i)
    linked: dict[int, list[int]] = defaultdict(list)
    reversed_ids = select(TicketReversal.ticket_id)
    for (site_id, category), idx in by_key.items():
        lo = found[idx[0]].at
        hi = found[idx[-1]].at + window
        tickets = session.execute(
            select(Ticket.id, Ticket.weighed_at)
            .where(
                Ticket.site_id == site_id,
                Ticket.category == category,
                Ticket.weighed_at > lo,
                Ticket.weighed_at <= hi,
                Ticket.id.not_in(reversed_ids),
            )
            .order_by(Ticket.weighed_at)
        ).all()
        for ticket_id, weighed_at in tickets:
            owner = None
            for i in idx:
                if found[i].at < weighed_at <= found[i].at + window:
                    owner = i
            if owner is not None:
                linked[owner].append(ticket_id)
    return [replace(p, tickets=tuple(linked.get(i, ()))) for i, p in enumerate(found)]


def balances(
    session: Session, period: str, densities: Densities, *, scope: Scope | None = None
) -> list[Balance]:
    """Per contractor and category: pickups, estimate and weighed mass of the month."""
    found = pickups(session, period, densities, scope=scope)
    ids = sorted({t for p in found for t in p.tickets})
    nets: dict[int, tuple[datetime, int]] = {}
    for i in range(0, len(ids), 500):
        for ticket_id, weighed_at, net_g in session.execute(
            select(Ticket.id, Ticket.weighed_at, Ticket.net_g).where(
                Ticket.id.in_(ids[i : i + 500])
            )
        ):
            nets[ticket_id] = (weighed_at, net_g)
    table: dict[tuple[str, str], Balance] = {}
    for p in found:
        b = table.setdefault(
            (p.contractor_bin, p.category), Balance(p.contractor_bin, p.category, period)
        )
        b.pickups += 1
        b.litres += p.litres
        b.estimate_g += p.estimate_g
        for t in p.tickets:
            weighed_at, net_g = nets[t]
            b.weighed_g += net_g
            b.tickets.append((t, weighed_at, net_g))
    return [table[k] for k in sorted(table)]


@dataclass(frozen=True, slots=True)
class HoldResult:
    balances: int
    over: int
    new_holds: int


def hold_surplus(
    session: Session,
    period: str,
    densities: Densities,
    *,
    by: str,
    now: datetime | None = None,
) -> HoldResult:
    """Hold the surplus tickets of every balance over its tolerance (once per ticket)."""
    now = now or datetime.now(UTC)
    rows = balances(session, period, densities)
    findings: list[Finding] = []
    over = 0
    tolerance = densities.tolerance_pct
    for b in rows:
        held = b.surplus_tickets(tolerance)
        if not held:
            continue
        over += 1
        detail = (
            f"{period} {b.contractor_bin} {b.category}: weighed {Decimal(b.weighed_g) / 1000} kg"
            f" against {Decimal(b.estimate_g) / 1000} kg estimated from {b.pickups} pickups"
            f" (tolerance {tolerance}%)"
        )
        findings.extend(Finding(t, REASON, detail) for t in held)
    created = record(session, findings, rules_version=None, now=now)
    audit.append(
        session,
        actor=by,
        action="holds.mass_balance",
        subject=f"mass balance {period}",
        data={
            "period": period,
            "tolerance_pct": format(tolerance, "f"),
            "over": [[b.contractor_bin, b.category] for b in rows if b.surplus_tickets(tolerance)],
            "new_holds": [h.ticket_id for h in created],
        },
        now=now,
    )
    session.flush()
    return HoldResult(len(rows), over, len(created))


def contractors_of(rows: Sequence[Balance]) -> list[str]:
    return sorted({b.contractor_bin for b in rows})
