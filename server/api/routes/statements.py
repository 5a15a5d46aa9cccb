"""Statements: previews by month, and the recorded workflow (compute, approve, pay, verify).

Staff see every contractor's statements; a contractor user sees only its own (lists
are filtered to it; another BIN, or another's statement, is "not found": 404). Computing,
approving and paying are operators' acts, each needing its own permission
(``statements.compute``, ``statements.approve``, ``statements.pay``) and recorded under
the caller's account and credential. Approving and paying name the total the caller saw
(``expected_total_kzt``): another total is refused (409), and so is an approval by the
account that computed the draft or a payment by the one that approved it (403).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import (
    PERIOD_PATTERN,
    ActorDep,
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
from server.money.allocation import MissingRate
from server.money.inputs import StatementError
from server.money.statements import (
    approve,
    compute_and_store,
    list_statements,
    pay,
    statement_for,
    statements_for,
)
from server.money.verification import verify
from server.people.accounts import NotFound

router = APIRouter(prefix="/api/v1", tags=["statements"])

Period = Path(pattern=PERIOD_PATTERN, description="YYYY-MM", examples=["2026-03"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComputeRequest(_Body):
    periods: list[str] = Field(min_length=1, description="months, YYYY-MM")


AMOUNT_PATTERN = r"^-?\d{1,15}(\.\d{1,2})?$"


class ApproveRequest(_Body):
    expected_total_kzt: str = Field(
        pattern=AMOUNT_PATTERN,
        description="the statement's total as the approver saw it, e.g. 546731.72",
    )


class PayRequest(_Body):
    reference: str = Field(min_length=1, max_length=100, description="payment order reference")
    expected_total_kzt: str = Field(
        pattern=AMOUNT_PATTERN, description="the total on the payment order, e.g. 546731.72"
    )


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
        "computed_by": row.computed_by,
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
    session: SessionDep, _: OperatorDep, actor: ActorDep, body: ComputeRequest
) -> dict[str, Any]:
    for p in body.periods:
        check_period(p)
    with committed(session, (StatementError, MissingRate), 422):
        result = compute_and_store(session, body.periods, actor=actor)
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
    # Another contractor's statement is not even confirmed to exist.
    scope.visible(row.contractor_bin if row else None, f"statement {statement_id}")
    assert row is not None
    return stored_view(row, with_body=True)


@router.post("/statements/{statement_id:int}/approve", responses=documented(404, 409))
def approve_statement(
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    statement_id: RowId,
    body: ApproveRequest,
) -> dict[str, Any]:
    with committed(session, StatementError, 409):
        row = approve(session, statement_id, actor=actor, expected_total=body.expected_total_kzt)
    return stored_view(row)


@router.post("/statements/{statement_id:int}/pay", responses=documented(400, 404, 409))
def pay_statement(
    session: SessionDep, _: OperatorDep, actor: ActorDep, statement_id: RowId, body: PayRequest
) -> dict[str, Any]:
    with committed(session, StatementError, 409):
        row = pay(
            session,
            statement_id,
            actor=actor,
            reference=body.reference,
            expected_total=body.expected_total_kzt,
        )
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
        raise NotFound(f"statement of {contractor_bin} for {period}")
    return statement.canonical() | {"hash": statement.hash}


def check_bin(contractor_bin: str) -> None:
    if problem := bin_problem(contractor_bin):
        raise HTTPException(422, detail=f"contractor_bin: {problem}")
