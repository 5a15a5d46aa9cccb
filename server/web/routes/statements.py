"""Statements for staff: the month's preview and the recorded workflow — compute
drafts, approve a draft, mark an approved statement paid — and one recorded
statement's page (staff, or the contractor it belongs to).

Every act calls the same ``server.money.statements`` function as the JSON API, as the
signed-in operator's account (its permission checked there, and the four-eyes rule); a
refusal (``StatementError``, a missing permission, a missing MRP value) comes back to
the list as a message and changes nothing. The approve and pay forms show the
contractor and the total, need a tick to confirm it, and carry the total shown in a
hidden field: the library refuses it if the statement now totals anything else.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from server.api.deps import (
    ActorDep,
    ContractorScope,
    OperatorDep,
    RowId,
    SessionDep,
    StaffDep,
    check_period,
    is_period,
)
from server.ledger.accounting import StoredStatement
from server.money.allocation import MissingRate
from server.money.contractors import contractors
from server.money.inputs import StatementError
from server.money.statements import (
    approve,
    body_statement,
    compute_and_store,
    list_statements,
    pay,
    statements_for,
)
from server.money.tickets import latest_period
from server.people.permissions import PermissionDenied
from server.web.render import PageDep, safe_next
from server.web.routes.contractors import statement_context, this_month

router = APIRouter(include_in_schema=False)

PeriodField = Annotated[str, Form(max_length=7)]
NextField = Annotated[str, Form(max_length=2000)]
TotalField = Annotated[str, Form(max_length=40)]
ConfirmField = Annotated[str, Form(max_length=8)]
REFUSED = (StatementError, PermissionDenied)


@router.get("/statements")
def statements_page(
    page: PageDep,
    session: SessionDep,
    user: StaffDep,
    period: str = Query("", pattern=r"^(\d{4}-\d{2})?$"),
) -> Response:
    period = period or latest_period(session) or this_month()
    check_period(period)
    preview_error = None
    try:
        preview = statements_for(session, period)
    except MissingRate as exc:
        preview, preview_error = [], str(exc)
    names = {c.bin: c.name for c in contractors(session, user.scope)}
    return page.render(
        "statements/list.html",
        period=period,
        statements=preview,
        preview_error=preview_error,
        recorded=list_statements(session, period=period),
        names=names,
    )


@router.post("/statements/compute")
def compute(
    page: PageDep,
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    period: PeriodField = "",
) -> Response:
    if not is_period(period):
        return page.refuse("/statements", f"period {period!r} is not YYYY-MM")
    target = f"/statements?period={period}"
    return page.act(
        session,
        target,
        lambda: compute_and_store(session, [period], actor=actor),
        (ValueError, MissingRate, PermissionDenied),  # StatementError, or a bad period
        lambda result: page.t(
            "statements.computed",
            period=period,
            drafts=len(result.drafts),
            unchanged=result.unchanged,
            holds=result.new_holds,
        ),
    )


@router.post("/statements/{statement_id:int}/approve")
def approve_statement(
    page: PageDep,
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    statement_id: RowId,
    expected_total: TotalField = "",
    confirm: ConfirmField = "",
    next: NextField = "",
) -> Response:
    target = safe_next(next, "/statements")
    if confirm != "yes":
        return page.refuse(target, page.t("statements.confirm_needed", id=statement_id))
    return page.act(
        session,
        target,
        lambda: approve(session, statement_id, actor=actor, expected_total=expected_total),
        REFUSED,
        lambda row: page.t(
            "statements.approved",
            id=row.id,
            contractor=row.contractor_bin,
            period=row.period,
            total=page.money(row.total_kzt),
            who=row.approved_by,
        ),
    )


@router.post("/statements/{statement_id:int}/pay")
def pay_statement(
    page: PageDep,
    session: SessionDep,
    _: OperatorDep,
    actor: ActorDep,
    statement_id: RowId,
    reference: Annotated[str, Form(max_length=100)] = "",
    expected_total: TotalField = "",
    confirm: ConfirmField = "",
    next: NextField = "",
) -> Response:
    target = safe_next(next, "/statements")
    if confirm != "yes":
        return page.refuse(target, page.t("statements.confirm_needed", id=statement_id))
    return page.act(
        session,
        target,
        lambda: pay(
            session,
            statement_id,
            actor=actor,
            reference=reference,
            expected_total=expected_total,
        ),
        REFUSED,
        lambda row: page.t(
            "statements.paid", id=row.id, reference=row.payment_ref, who=row.paid_by
        ),
    )


@router.get("/statements/{statement_id:int}")
def recorded_page(
    page: PageDep, session: SessionDep, scope: ContractorScope, statement_id: RowId
) -> Response:
    row = session.get(StoredStatement, statement_id)
    # As in the API: another contractor's statement is not even confirmed to exist.
    scope.visible(row.contractor_bin if row else None, f"statement {statement_id}")
    assert row is not None
    body = json.loads(row.body)
    shown = body if row.kind == "original" else body["recomputed"]
    original = session.get(StoredStatement, row.adjusts_id) if row.adjusts_id else None
    return page.render(
        "statements/recorded.html",
        row=row,
        delta=body["lines"] if row.kind != "original" else None,
        original=original,
        **statement_context(body_statement(shown)),
    )
