"""Disputes: a contractor opens one on a ticket or a line of one of its recorded
statements and follows it; staff see every dispute; an operator accepts or rejects
it with a reason both sides read.

Scope as in the JSON API (``server/api/routes/disputes.py``): a contractor's list is
narrowed to its own BIN and a dispute is always opened for the signed-in
contractor's BIN; the library checks that a disputed ticket or statement is that
BIN's, and refuses another's with the words it uses for a missing one.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from server.api.deps import (
    TICKET_REF,
    ContractorDep,
    ContractorScope,
    CurrentUser,
    OperatorDep,
    RowId,
    SessionDep,
)
from server.money.disputes import DisputeError, decide, list_disputes, open_dispute
from server.money.statements import list_statements
from server.people.accounts import NotFound, Role
from server.web.render import PageDep, safe_next

router = APIRouter(include_in_schema=False)

TICKET_RE: Final = re.compile(TICKET_REF)


@router.get("/disputes")
def disputes_page(
    page: PageDep,
    session: SessionDep,
    user: CurrentUser,
    scope: ContractorScope,
    show: Annotated[Literal["open", "all"], Query()] = "all",
    ticket: Annotated[str, Query(max_length=200)] = "",
    statement: Annotated[RowId | None, Query()] = None,
) -> Response:
    views = list_disputes(
        session, contractor_bin=scope.narrow(None), status="open" if show == "open" else None
    )
    lines: list[tuple[str, str]] = []
    if user.role is Role.CONTRACTOR:
        # Lines the contractor may dispute: those of its own recorded statements.
        for row in list_statements(session, contractor_bin=scope.narrow(None)):
            for ln in json.loads(row.body)["lines"]:
                key = f"{ln['contract_id']}@v{ln['version']}:{ln['stage']}"
                label = f"#{row.id} {row.period} · {ln['contract_id']} v{ln['version']} · "
                lines.append((f"{row.id}|{key}", label + page.t.label("stage", ln["stage"])))
    chosen = next((v for v, _ in lines if v.startswith(f"{statement}|")), "")
    return page.render(
        "disputes/list.html",
        disputes=views,
        show=show,
        lines=lines,
        prefill_ticket=ticket,
        prefill_line=chosen,
    )


@router.post("/disputes")
def open_(
    page: PageDep,
    session: SessionDep,
    user: ContractorDep,
    comment: Annotated[str, Form(max_length=4000)] = "",
    ticket: Annotated[str, Form(max_length=200)] = "",
    line: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    assert user.contractor_bin is not None  # a contractor account always has its BIN
    ticket_ref = None
    if ticket.strip():
        match = TICKET_RE.fullmatch(ticket.strip())
        if match is None:
            return page.refuse("/disputes", page.t("disputes.bad_ticket", ticket=ticket))
        ticket_ref = (match.group(1), int(match.group(2)))
    statement_id, line_ref = None, None
    if line:
        sid, _, key = line.partition("|")
        if not sid.isdigit() or len(sid) > 18 or not key:
            return page.refuse("/disputes", page.t("disputes.bad_line"))
        statement_id, line_ref = int(sid), key
    bin_ = user.contractor_bin
    return page.act(
        session,
        "/disputes",
        lambda: open_dispute(
            session,
            contractor_bin=bin_,
            comment=comment,
            actor=user.username,
            ticket=ticket_ref,
            statement_id=statement_id,
            line=line_ref,
        ),
        (DisputeError, NotFound),
        lambda d: page.t("disputes.opened", id=d.id),
    )


@router.post("/disputes/{dispute_id}/decide")
def decide_(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    dispute_id: RowId,
    decision: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    target = safe_next(next, "/disputes")
    return page.act(
        session,
        target,
        lambda: decide(session, dispute_id, decision, actor=user.username, reason=reason),
        DisputeError,
        lambda d: page.t(
            "disputes.decided",
            id=d.id,
            status=page.t.label("dispute_status", d.status),
            who=d.decided_by,
        ),
    )
