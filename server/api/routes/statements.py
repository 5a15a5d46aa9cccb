"""Statements: what a contractor earned in a month, line by line.

Staff see every contractor's statement; a contractor user sees only its own (the
list is filtered to it, another BIN is refused with 403).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Path

from server.api.deps import ContractorScope, SessionDep
from server.identifiers import bin_problem
from server.statements import parse_period, statement_for, statements_for

router = APIRouter(prefix="/api/v1", tags=["statements"])

Period = Path(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM", examples=["2026-03"])


@router.get("/statements/{period}")
def list_statements(
    session: SessionDep, scope: ContractorScope, period: str = Period
) -> list[dict[str, Any]]:
    check_period(period)
    return [
        s.canonical() | {"hash": s.hash}
        for s in statements_for(session, period)
        if scope.allows(s.contractor_bin)
    ]


@router.get("/contractors/{contractor_bin}/statements/{period}")
def contractor_statement(
    session: SessionDep, scope: ContractorScope, contractor_bin: str, period: str = Period
) -> dict[str, Any]:
    check_bin(contractor_bin)
    scope.require(contractor_bin)
    check_period(period)
    statement = statement_for(session, contractor_bin, period)
    if statement is None:
        raise HTTPException(404, detail=f"no contract of {contractor_bin} covers {period}")
    return statement.canonical() | {"hash": statement.hash}


def check_bin(contractor_bin: str) -> None:
    if problem := bin_problem(contractor_bin):
        raise HTTPException(422, detail=f"contractor_bin: {problem}")


def check_period(period: str) -> None:
    try:
        parse_period(period)
    except ValueError as exc:
        raise HTTPException(422, detail=str(exc)) from None
