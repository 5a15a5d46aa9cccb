"""Which tickets count for which contractor.

A ticket carries no contractor: it is the allocation (``server.payments.allocate``)
that gives its tonnes to contracts, and so to contractors. A contractor's tickets are
therefore exactly the tickets with a share in one of its contracts (paid or over the
cap) — the same answer its statement is built from, never a second rule.

The inputs are loaded the way ``server.statements.statements_for`` loads them (latest
contract versions, tickets from the earliest contract start), so the shares here are
the shares behind the statements.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from sqlalchemy.orm import Session

from server.contracts import latest_versions
from server.payments import Share, allocate
from server.statements import load_tickets, terms_of


def contractor_shares(
    session: Session, contractor_bin: str, first: date, last: date
) -> list[Share]:
    """Every share of ``contractor_bin``'s contracts in tickets weighed ``first``..``last``."""
    terms = [terms_of(c) for c in latest_versions(session) if c.period_start <= last]
    if not terms:
        return []
    start = min(t.period_start for t in terms)
    tickets = load_tickets(session, {t.category for t in terms}, start, last)
    return [
        s
        for s in allocate(tickets, terms)
        if s.contract is not None
        and s.contract.contractor_bin == contractor_bin
        and first <= s.ticket.local_date <= last
    ]


def shares_by_ticket(shares: list[Share]) -> dict[int, list[Share]]:
    by_ticket: dict[int, list[Share]] = defaultdict(list)
    for s in shares:
        by_ticket[s.ticket.ticket_id].append(s)
    return dict(by_ticket)
