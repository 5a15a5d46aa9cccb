"""Statements: previews by month, and the recorded workflow (compute, approve, pay, verify).

Staff see every contractor's statements; a contractor user sees only its own (lists
are filtered to it, another BIN is refused with 403). Computing, approving and paying
are operators' acts, recorded under the signed-in operator's name.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import (
    PERIOD_PATTERN,
    ContractorScope,
    OperatorDep,
    RowId,
    SessionDep,
    StaffDep,
    check_period,
    committed,
    documented,
)
from server.identifiers import bin_problem
from server.ledger.accounting import StoredStatement
from server.money.payments import MissingRate
from server.money.statements import (
    StatementError,
    approve,
    compute_and_store,
    list_statements,
    pay,
    statement_for,
    statements_for,
    verify,
)

router = APIRouter(prefix="/api/v1", tags=["statements"])

Period = Path(pattern=PERIOD_PATTERN, description="YYYY-MM", examples=["2026-03"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComputeRequest(_Body):
    periods: list[str] = Field(min_length=1, description="months, YYYY-MM")


class PayRequest(_Body):
    reference: str = Field(min_length=1, max_length=100, description="payment order reference")


def stored_view(row: StoredStatement, with_body: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "contractor_bin": row.contractor_bin,
        "period": row.period,
        "kind": row.kind,
        "adjusts_id": row.adjusts_id,
        "status": row.status,
        "total_kzt": format(row.total_kzt, "f"),
        "sha256": row.sha256,
        "computed_at": row.computed_at.isoformat(),
        "approved_at": row.approved_at.isoformat() if row.approved_at else None,
        "approved_by": row.approved_by,
        "evidence_sha256": row.evidence_sha256,
        "paid_at": row.paid_at.isoformat() if row.paid_at else None,
        "paid_by": row.paid_by,
        "payment_ref": row.payment_ref,
    }
    if with_body:
        out["body"] = json.loads(row.body)
    return out


@router.get("/statements")
def stored_statements(
    session: SessionDep,
    scope: ContractorScope,
    period: str | None = Query(None, pattern=PERIOD_PATTERN),
    contractor_bin: str | None = None,
) -> list[dict[str, Any]]:
    if period is not None:
        check_period(period)
    if contractor_bin is not None:
        scope.require(contractor_bin)
    rows = list_statements(session, period=period, contractor_bin=scope.narrow(contractor_bin))
    return [stored_view(r) for r in rows]


@router.get("/statements/verify")
def verify_statements(
    session: SessionDep,
    _: StaffDep,
    period: str | None = Query(None, pattern=PERIOD_PATTERN),
    tickets: bool = True,
) -> dict[str, Any]:
    if period is not None:
        check_period(period)
    report = verify(session, period=period, check_tickets=tickets)
    return {
        "ok": report.ok,
        "statements": report.statements,
        "tickets_checked": report.tickets_checked,
        "problems": report.problems,
    }


@router.post("/statements/compute", responses=documented(400))
def compute_statements(
    session: SessionDep, user: OperatorDep, body: ComputeRequest
) -> dict[str, Any]:
    for p in body.periods:
        check_period(p)
    with committed(session, (StatementError, MissingRate), 422):
        result = compute_and_store(session, body.periods, actor=user.username)
    return {
        "run_id": result.run_id,
        "drafts": [stored_view(d) for d in result.drafts],
        "unchanged": result.unchanged,
        "new_holds": result.new_holds,
    }


@router.get("/statements/{statement_id:int}", responses=documented(404))
def stored_statement(
    session: SessionDep, scope: ContractorScope, statement_id: RowId
) -> dict[str, Any]:
    row = session.get(StoredStatement, statement_id)
    if row is None or not scope.allows(row.contractor_bin):
        # Another contractor's statement is not even confirmed to exist.
        raise HTTPException(404, detail=f"statement {statement_id} does not exist")
    return stored_view(row, with_body=True)


@router.post("/statements/{statement_id:int}/approve", responses=documented(404, 409))
def approve_statement(
    session: SessionDep, user: OperatorDep, statement_id: RowId
) -> dict[str, Any]:
    with committed(session, StatementError, 409):
        row = approve(session, statement_id, actor=user.username)
    return stored_view(row)


@router.post("/statements/{statement_id:int}/pay", responses=documented(400, 404, 409))
def pay_statement(
    session: SessionDep, user: OperatorDep, statement_id: RowId, body: PayRequest
) -> dict[str, Any]:
    with committed(session, StatementError, 409):
        row = pay(session, statement_id, actor=user.username, reference=body.reference)
    return stored_view(row)


@router.get("/statements/{period}", responses=documented(404))
def list_statements_preview(
    session: SessionDep, scope: ContractorScope, period: str = Period
) -> list[dict[str, Any]]:
    check_period(period)
    try:
        return [
            s.canonical() | {"hash": s.hash}
            for s in statements_for(session, period)
            if scope.allows(s.contractor_bin)
        ]
    except MissingRate as exc:
        raise HTTPException(422, detail=str(exc)) from None


@router.get("/contractors/{contractor_bin}/statements/{period}", responses=documented(404))
def contractor_statement(
    session: SessionDep, scope: ContractorScope, contractor_bin: str, period: str = Period
) -> dict[str, Any]:
    check_bin(contractor_bin)
    scope.require(contractor_bin)
    check_period(period)
    try:
        statement = statement_for(session, contractor_bin, period)
    except MissingRate as exc:
        raise HTTPException(422, detail=str(exc)) from None
    if statement is None:
        raise HTTPException(404, detail=f"no contract of {contractor_bin} covers {period}")
    return statement.canonical() | {"hash": statement.hash}


def check_bin(contractor_bin: str) -> None:
    if problem := bin_problem(contractor_bin):
        raise HTTPException(422, detail=f"contractor_bin: {problem}")
