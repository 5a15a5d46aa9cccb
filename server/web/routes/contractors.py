"""Home and the contractor overview (delivered tonnes, statement list, one statement)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from server.api.deps import ContractorScope, CurrentUser, SessionDep, check_period
from server.api.routes.statements import check_bin
from server.money.amounts import LOCAL_TZ
from server.money.contractors import overview
from server.money.lines import Statement
from server.money.standing import standings
from server.money.statements import list_statements, statement_for
from server.people.accounts import NotFound, Scope
from server.web.render import PageDep

router = APIRouter(include_in_schema=False)

_KNOWN_SECTIONS = frozenset(
    {
        "format",
        "contractor_bin",
        "contractor_name",
        "period",
        "lines",
        "over_cap",
        "held",
        "kind",
        "total_tonnes",
        "total_kzt",
        "rounding_policy",
        "inputs",
    }
)


def this_month() -> str:
    return datetime.now(LOCAL_TZ).strftime("%Y-%m")


@router.get("/")
def home(user: CurrentUser) -> Response:
    if user.contractor_bin is not None:
        return RedirectResponse(f"/contractors/{user.contractor_bin}", status_code=303)
    return RedirectResponse("/statements", status_code=303)


@router.get("/contractors/{contractor_bin}")
def contractor_page(
    page: PageDep, session: SessionDep, scope: ContractorScope, contractor_bin: str
) -> Response:
    check_bin(contractor_bin)
    view = overview(session, scope, contractor_bin, today=datetime.now(LOCAL_TZ).date())
    if view is None:
        raise NotFound(f"contractor {contractor_bin}")
    recorded = list_statements(session, contractor_bin=contractor_bin)
    caps = standings(session, Scope(contractor_bin), today=datetime.now(LOCAL_TZ).date())
    return page.render("contractors/overview.html", view=view, recorded=recorded, caps=caps)


@router.get("/contractors/{contractor_bin}/statements/{period}")
def statement_page(
    page: PageDep, session: SessionDep, scope: ContractorScope, contractor_bin: str, period: str
) -> Response:
    check_bin(contractor_bin)
    scope.require(contractor_bin)
    check_period(period)
    statement = statement_for(session, contractor_bin, period)
    if statement is None:
        raise NotFound(f"statement of {contractor_bin} for {period}")
    return page.render("contractors/statement.html", **statement_context(statement))


def statement_context(statement: Statement) -> dict[str, Any]:
    """What ``statements/_body.html`` needs to show a statement."""
    canonical = statement.canonical()
    # Sections this page has no table for yet are still shown, as data.
    extra = {k: v for k, v in canonical.items() if k not in _KNOWN_SECTIONS}
    return {"statement": statement, "canonical": canonical, "extra": extra, "local_tz": LOCAL_TZ}
