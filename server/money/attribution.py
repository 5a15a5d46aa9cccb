"""Which tickets count for which contractor.

A ticket carries no contractor: it is the allocation (``server.money.allocation.allocate``)
that gives its tonnes to contracts, and so to contractors. A contractor's tickets are
therefore exactly the tickets with a share in one of its contracts (paid or over the
cap) — the same answer its statement is built from, never a second rule.

The shares come from ``server.money.statements.compute`` itself (same contracts, holds,
badges and MRP table), so they are the shares behind the statements.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy.orm import Session

from server.money.allocation import Share
from server.money.amounts import LOCAL_TZ
from server.money.statements import compute


def contractor_shares(
    session: Session, contractor_bin: str, first: date, last: date
) -> list[Share]:
    """Every share of ``contractor_bin``'s contracts in tickets weighed ``first``..``last``
    (one local month), from the same computation as that month's statement preview."""
    computation = compute(
        session, [f"{first:%Y-%m}"], contractors={contractor_bin}, record_shares=True
    )
    return [
        s
        for s in computation.allocation.shares or ()
        if s.contract is not None
        and s.contract.contractor_bin == contractor_bin
        and first <= s.ticket.local_date <= last
    ]


def shares_by_ticket(shares: list[Share]) -> dict[int, list[Share]]:
    by_ticket: dict[int, list[Share]] = defaultdict(list)
    for s in shares:
        by_ticket[s.ticket.ticket_id].append(s)
    return dict(by_ticket)


def owns_ticket(
    session: Session, contractor_bin: str, ticket_id: int, weighed_at: datetime
) -> bool:
    """Whether a ticket is ``contractor_bin``'s: a share of it went to one of the
    contractor's contracts, or, held, the contractor's statement shows it as held.
    The same computation as the ticket lists and the statement of its month."""
    first = weighed_at.astimezone(LOCAL_TZ).date()
    computation = compute(
        session, [f"{first:%Y-%m}"], contractors={contractor_bin}, record_shares=True
    )
    allocation = computation.allocation
    if any(
        s.ticket.ticket_id == ticket_id
        and s.contract is not None
        and s.contract.contractor_bin == contractor_bin
        for s in allocation.shares or ()
    ):
        return True
    return any(
        h.ticket.ticket_id == ticket_id and any(b == contractor_bin for b, _ in h.attribution)
        for h in allocation.held
    )
