"""Contractors: the directory (as far as the caller may see it) and a contractor's
statements and deliveries month by month."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Query

from server.api.deps import ContractorScope, SessionDep, documented
from server.api.routes.statements import check_bin
from server.money.amounts import LOCAL_TZ
from server.money.contractors import contractors, overview
from server.people.accounts import NotFound

router = APIRouter(prefix="/api/v1", tags=["contractors"])


@router.get("/contractors")
def list_contractors(session: SessionDep, scope: ContractorScope) -> list[dict[str, str]]:
    return [
        {"bin": c.bin, "name": c.name, "first_period": c.first_period, "last_period": c.last_period}
        for c in contractors(session, scope)
    ]


def today_local() -> date:
    return datetime.now(LOCAL_TZ).date()


@router.get("/contractors/{contractor_bin}/overview", responses=documented(404))
def contractor_overview(
    session: SessionDep,
    scope: ContractorScope,
    contractor_bin: str,
    months: int = Query(12, ge=1, le=60),
) -> dict[str, Any]:
    check_bin(contractor_bin)
    view = overview(session, scope, contractor_bin, today=today_local(), max_months=months)
    if view is None:
        raise NotFound(f"contractor {contractor_bin}")
    return {
        "bin": view.contractor.bin,
        "name": view.contractor.name,
        "statements": [
            {
                "period": s.period,
                "total_tonnes": format(s.total_tonnes, "f"),
                "total_kzt": format(s.total_kzt, "f"),
                "hash": s.hash,
            }
            for s in view.statements
        ],
        "deliveries": [
            {
                "period": d.period,
                "category": d.category,
                "stage": d.stage,
                "paid_t": format(d.paid_t, "f"),
                "unpaid_t": format(d.unpaid_t, "f"),
            }
            for d in view.deliveries
        ],
    }
