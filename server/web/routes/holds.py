"""Holds (staff): tickets kept out of payment; operators release or reject them.

The resolution is ``server.money.holds.resolve`` under the signed-in operator's name, with
the reason the form requires; a refusal (no reason, already resolved) is a message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query
from fastapi.responses import Response

from server.api.deps import OperatorDep, RowId, SessionDep, StaffDep
from server.money.holds import HoldError, list_holds, resolve
from server.web.render import PageDep, safe_next

router = APIRouter(include_in_schema=False)
PAGE = 100


@router.get("/holds")
def holds_page(
    page: PageDep,
    session: SessionDep,
    user: StaffDep,
    show: Annotated[Literal["open", "all"], Query()] = "open",
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> Response:
    # One more than a page says whether another page follows.
    status = "open" if show == "open" else None
    found = list_holds(session, status=status, after=after, limit=PAGE + 1)
    holds, more = found[:PAGE], len(found) > PAGE
    return page.render(
        "holds/list.html",
        holds=holds,
        show=show,
        after=after,
        next_after=holds[-1].hold_id if more else None,
    )


@router.post("/holds/{hold_id}/resolve")
def resolve_hold(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    hold_id: RowId,
    decision: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    target = safe_next(next, "/holds")
    return page.act(
        session,
        target,
        lambda: resolve(session, hold_id, decision, actor=user.username, reason=reason),
        HoldError,
        lambda r: page.t(
            "holds.resolved",
            id=hold_id,
            status=page.t.label(
                "hold_status", "released" if r.decision == "release" else "rejected"
            ),
            who=r.actor,
        ),
    )
