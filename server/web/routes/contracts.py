"""Contracts (staff: all; a contractor: its own): caps, what the statements paid, what
is left, and each contract's months against its cap as a chart drawn on the server.

The figures are :mod:`server.money.standing`'s, read from the statements themselves;
another contractor's contract is "not found", as a missing one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Final

from fastapi import APIRouter, Query
from fastapi.responses import Response

from server.api.deps import ContractorScope, SessionDep
from server.api.routes.contractors import today_local
from server.money.standing import Standing, standings
from server.web.charts import Bar, cap_chart
from server.web.render import Page, PageDep

router = APIRouter(include_in_schema=False)
PAGE: Final = 100


@router.get("/contracts")
def contracts_page(
    page: PageDep,
    session: SessionDep,
    scope: ContractorScope,
    number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    found = standings(session, scope, today=today_local())
    pages = max(1, -(-len(found) // PAGE))
    shown = found[(number - 1) * PAGE : number * PAGE]
    return page.render(
        "contracts/list.html", standings=shown, total=len(found), number=number, pages=pages
    )


@router.get("/contracts/{contract_id}")
def contract_page(
    page: PageDep, session: SessionDep, scope: ContractorScope, contract_id: str
) -> Response:
    (standing,) = standings(session, scope, today=today_local(), contract_id=contract_id[:64])
    return page.render("contracts/one.html", s=standing, chart=chart(page, standing))


def chart(page: Page, s: Standing) -> str:
    """The months against the cap; nothing when the figures could not be computed."""
    if s.paid_t is None or s.over_cap_t is None or s.remaining_t is None:
        return ""
    t = page.t
    legend = (
        t("contracts.paid_t"),
        t("contracts.over_cap_t"),
        t("contracts.paid_to_date"),
        t("contracts.cap_t"),
    )
    return cap_chart(
        [Bar(m.period[5:], m.paid_t, m.over_cap_t, m.paid_to_date_t) for m in s.months],
        s.terms.cap_t,
        title=t("contracts.chart_title", contract=s.terms.contract_id),
        desc=t(
            "contracts.chart_desc",
            cap=page.tonnes(s.terms.cap_t),
            paid=page.tonnes(s.paid_t),
            over=page.tonnes(s.over_cap_t),
            left=page.tonnes(max(s.remaining_t, Decimal(0))),
            first=s.months[0].period if s.months else "—",
            last=s.through,
        ),
        legend=legend,
        number=page.tonnes,
        chart_id=f"chart-{s.terms.contract_id}",
    )
