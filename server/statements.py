"""Statements from the ledger: load tickets and contracts, allocate, build per contractor."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.contracts import latest_versions
from server.ledger.models import Contract, Site, Ticket
from server.payments import LOCAL_TZ, Statement, Terms, TicketIn, allocate, build_statement


def parse_period(period: str) -> tuple[date, date]:
    """``YYYY-MM`` -> (first day, last day)."""
    try:
        first = datetime.strptime(period, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"period {period!r} is not YYYY-MM") from None
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, nxt - timedelta(days=1)


def terms_of(c: Contract) -> Terms:
    return Terms(
        contract_id=c.contract_id,
        version=c.version,
        contractor_bin=c.contractor_bin,
        contractor_name=c.contractor_name,
        category=c.category,
        stage=c.stage,
        regions=frozenset(r for r in c.regions.split(";") if r),
        site_ids=frozenset(s for s in c.site_ids.split(";") if s),
        period_start=c.period_start,
        period_end=c.period_end,
        cap_t=c.cap_t,
        rate_kzt_per_t=c.rate,
        budget_cap_kzt=c.budget_cap_kzt,
    )


def load_tickets(session: Session, categories: set[str], start: date, end: date) -> list[TicketIn]:
    """Tickets of ``categories`` weighed on local dates ``start``..``end``."""
    lo = datetime.combine(start, time.min, LOCAL_TZ).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), time.min, LOCAL_TZ).astimezone(UTC)
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.device_id,
            Ticket.seq,
            Ticket.weighed_at,
            Ticket.site_id,
            func.coalesce(Site.region, ""),
            Ticket.category,
            Ticket.net_g,
        )
        .outerjoin(Site, Site.site_id == Ticket.site_id)
        .where(Ticket.category.in_(categories), Ticket.weighed_at >= lo, Ticket.weighed_at < hi)
    )
    return [TicketIn(*row) for row in rows]


def statements_for(session: Session, period: str) -> list[Statement]:
    """Every contractor's statement for ``period`` (contractors with contracts that overlap it)."""
    first, last = parse_period(period)
    contracts = [c for c in latest_versions(session) if c.period_start <= last]
    if not contracts:
        return []
    terms = [terms_of(c) for c in contracts]
    start = min(t.period_start for t in terms)
    tickets = load_tickets(session, {t.category for t in terms}, start, last)
    shares = allocate(tickets, terms)
    contractors = sorted(
        {(t.contractor_bin, t.contractor_name) for t in terms if t.period_end >= first}
    )
    inputs = {
        "ticket_high_water": max((t.ticket_id for t in tickets), default=0),
        "contracts": sorted(f"{t.contract_id}@v{t.version}" for t in terms),
    }
    return [build_statement(b, name, period, shares, inputs) for b, name in contractors]


def statement_for(session: Session, contractor_bin: str, period: str) -> Statement | None:
    for statement in statements_for(session, period):
        if statement.contractor_bin == contractor_bin:
            return statement
    return None
