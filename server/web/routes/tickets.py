"""Ticket list with filters and CSV export (scoped), and the evidence page (staff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from server.api.deps import ContractorScope, CurrentUser, RowId, SessionDep, check_period
from server.api.routes.tickets import csv_response, visible_evidence
from server.money.contractors import filter_choices
from server.money.tickets import (
    TicketFilter,
    all_tickets,
    csv_lines,
    find_tickets,
    latest_period,
)
from server.web.render import PageDep
from server.web.routes.contractors import this_month

router = APIRouter(include_in_schema=False)

_IDENT = r"^([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})?$"


def page_filter(
    session: SessionDep,
    scope: ContractorScope,
    period: Annotated[str, Query(pattern=r"^([0-9]{4}-[0-9]{2})?$")] = "",
    category: Annotated[str, Query(pattern=_IDENT)] = "",
    site: Annotated[str, Query(pattern=_IDENT)] = "",
    device: Annotated[str, Query(pattern=_IDENT)] = "",
    contractor: Annotated[str, Query(pattern=r"^(\d{12})?$")] = "",
) -> TicketFilter:
    """The form's fields; empty means "any" (a form sends every field, filled or not)."""
    # Staff open on the last month with tickets; a contractor on the current month.
    if not period:
        period = (latest_period(session) if scope.is_everything else None) or this_month()
    check_period(period)
    return TicketFilter(period, category or None, site or None, device or None, contractor or None)


FilterDep = Annotated[TicketFilter, Depends(page_filter)]


@router.get("/tickets")
def tickets_page(
    page: PageDep,
    session: SessionDep,
    scope: ContractorScope,
    flt: FilterDep,
    page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    result = find_tickets(session, scope, flt, page_no)
    categories, sites = filter_choices(session, scope)
    query = page.request.url.query
    return page.render(
        "tickets/list.html",
        result=result,
        flt=flt,
        categories=categories,
        sites=sites,
        csv_href="/tickets.csv" + (f"?{query}" if query else ""),
    )


@router.get("/tickets.csv")
def tickets_csv(
    session: SessionDep,
    scope: ContractorScope,
    flt: FilterDep,
) -> Response:
    return csv_response(list(csv_lines(all_tickets(session, scope, flt))), flt)


@router.get("/tickets/{ticket_id}")
def evidence_page(
    page: PageDep, session: SessionDep, user: CurrentUser, ticket_id: RowId
) -> Response:
    return page.render("tickets/evidence.html", e=visible_evidence(session, user, ticket_id))
