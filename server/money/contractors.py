"""Contractors as their pages show them: who they are, their statements month by month,
and the tonnes they delivered — all read through ``server.money.statements``, so a page
shows exactly what the statement API returns."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ledger.models import Site, Ticket
from server.money import previews
from server.money.contracts import latest_versions
from server.money.lines import Statement
from server.money.statements import monthly_previews
from server.people.accounts import Scope


@dataclass(frozen=True, slots=True)
class Contractor:
    bin: str
    name: str
    first_period: str
    last_period: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """Tonnes one contractor delivered in a month, by category and service stage."""

    period: str
    category: str
    stage: str
    paid_t: Decimal
    unpaid_t: Decimal
    """Weighed and attributed to the contractor but over the contract's cap."""

    @property
    def total_t(self) -> Decimal:
        return self.paid_t + self.unpaid_t


@dataclass(frozen=True, slots=True)
class Overview:
    contractor: Contractor
    statements: list[Statement]
    """Newest month first."""
    deliveries: list[Delivery]


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def contractors(session: Session, scope: Scope) -> list[Contractor]:
    """Contractors with contracts, as far as ``scope`` may see them, by name."""
    spans: dict[str, list[Any]] = {}
    for c in latest_versions(session):
        if not scope.allows(c.contractor_bin):
            continue
        span = spans.setdefault(c.contractor_bin, [c.contractor_name, c.period_start, c.period_end])
        span[1] = min(span[1], c.period_start)
        span[2] = max(span[2], c.period_end)
    return sorted(
        (Contractor(b, name, _month(lo), _month(hi)) for b, (name, lo, hi) in spans.items()),
        key=lambda c: (c.name.casefold(), c.bin),
    )


def find_contractor(session: Session, scope: Scope, contractor_bin: str) -> Contractor | None:
    scope.require(contractor_bin)
    for c in contractors(session, scope):
        if c.bin == contractor_bin:
            return c
    return None


def months(first: str, last: str) -> list[str]:
    """``first``..``last`` (YYYY-MM), newest first."""
    y, m = int(last[:4]), int(last[5:7])
    out = []
    while f"{y:04d}-{m:02d}" >= first:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
    return out


def overview(
    session: Session, scope: Scope, contractor_bin: str, *, today: date, max_months: int = 12
) -> Overview | None:
    """A contractor's last ``max_months`` statements (up to this month) and deliveries.
    Kept while the ledger is unchanged (:func:`server.money.previews.remember`)."""
    scope.require(contractor_bin)
    # Within scope the answer is the same for staff and the contractor itself.
    return previews.remember(
        session,
        ("overview", contractor_bin, today, max_months),
        lambda: _overview(session, contractor_bin, today=today, max_months=max_months),
    )


def _overview(
    session: Session, contractor_bin: str, *, today: date, max_months: int
) -> Overview | None:
    contractor = find_contractor(session, Scope(contractor_bin), contractor_bin)
    if contractor is None:
        return None
    last = min(contractor.last_period, _month(today))
    periods = months(contractor.first_period, last)[:max_months]
    # One computation for every month shown, not one per month.
    found = monthly_previews(session, periods, contractors={contractor_bin})
    statements = sorted(found, key=lambda s: s.period, reverse=True)
    return Overview(contractor, statements, deliveries(statements))


def deliveries(statements: list[Statement]) -> list[Delivery]:
    """Per month, category and stage: paid tonnes and tonnes left unpaid, from statements."""
    paid: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    unpaid: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for s in statements:
        for line in s.lines:
            paid[(s.period, line.category, line.stage)] += line.tonnes
        for u in s.over_cap:
            unpaid[(s.period, u.category, u.stage)] += u.tonnes
    keys = sorted(set(paid) | set(unpaid))
    keys.sort(key=lambda k: k[0], reverse=True)  # newest month first, stable within it
    return [Delivery(*k, paid.get(k, Decimal(0)), unpaid.get(k, Decimal(0))) for k in keys]


def filter_choices(session: Session, scope: Scope) -> tuple[list[str], list[str]]:
    """Categories and site ids to offer in ticket filters: all of them to staff, to a
    contractor only those its contracts cover (the choices are data too)."""
    if scope.is_everything:
        categories = list(
            session.scalars(select(Ticket.category).distinct().order_by(Ticket.category))
        )
        return categories, list(session.scalars(select(Site.site_id).order_by(Site.site_id)))
    own = [c for c in latest_versions(session) if scope.allows(c.contractor_bin)]
    regions = {r for c in own for r in c.region_list}
    site_ids = {s for c in own for s in c.site_ids.split(";") if s}
    if regions:
        site_ids |= set(session.scalars(select(Site.site_id).where(Site.region.in_(regions))))
    return sorted({c.category for c in own}), sorted(site_ids)
