"""Disputes: a contractor's challenge and the operator's decision, visible to both.

A contractor user opens disputes in its own name only, on its own tickets and
statements (another's is "not found", as a missing one), and reads its own; staff
never open one in a contractor's name (403); operators decide. Each act is recorded
under the signed-in user's name.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import (
    TICKET_REF,
    ContractorDep,
    ContractorScope,
    OperatorDep,
    RowId,
    SessionDep,
    committed,
    documented,
)
from server.money.disputes import DisputeError, decide, list_disputes, open_dispute

router = APIRouter(prefix="/api/v1/disputes", tags=["disputes"])


class OpenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contractor_bin: str | None = Field(
        None, description="optional; if given, the caller's own BIN (no one acts for another)"
    )
    comment: str = Field(min_length=1)
    ticket: str | None = Field(None, pattern=TICKET_REF, description="DEVICE:SEQ")
    statement_id: RowId | None = None
    line: str | None = Field(None, description="contract_id@vN:stage")


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject"]
    reason: str = Field(min_length=1)


@router.get("")
def disputes(
    session: SessionDep,
    scope: ContractorScope,
    contractor_bin: str | None = None,
    status: Literal["open", "accepted", "rejected"] | None = Query(None),
) -> list[dict[str, Any]]:
    if contractor_bin is not None:
        scope.require(contractor_bin)
    views = list_disputes(session, contractor_bin=scope.narrow(contractor_bin), status=status)
    return [v.to_dict() for v in views]


@router.post("", status_code=201, responses=documented(400, 404))
def open_(session: SessionDep, user: ContractorDep, body: OpenRequest) -> dict[str, Any]:
    assert user.contractor_bin is not None  # a contractor account always has its BIN
    if body.contractor_bin not in (None, user.contractor_bin):
        raise HTTPException(403, detail="a dispute is opened in the caller's own name only")
    ticket = None
    if body.ticket is not None:
        device_id, _, seq = body.ticket.rpartition(":")
        ticket = (device_id, int(seq))
    with committed(session, DisputeError, 422):
        d = open_dispute(
            session,
            contractor_bin=user.contractor_bin,
            comment=body.comment,
            actor=user.username,
            ticket=ticket,
            statement_id=body.statement_id,
            line=body.line,
        )
    return {"id": d.id, "status": d.status}


@router.post("/{dispute_id}/decide", responses=documented(400, 404, 409))
def decide_(
    session: SessionDep, user: OperatorDep, dispute_id: RowId, body: DecideRequest
) -> dict[str, Any]:
    with committed(session, DisputeError, 409):
        d = decide(session, dispute_id, body.decision, actor=user.username, reason=body.reason)
    return {"id": d.id, "status": d.status, "decided_by": d.decided_by}
