"""Holds: tickets kept out of payment, and their resolution by an operator."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from server.api.deps import OperatorDep, RowId, SessionDep, committed, documented
from server.money.holds import HoldError, list_holds, resolve

router = APIRouter(prefix="/api/v1/holds", tags=["holds"])


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["release", "reject"]
    reason: str = Field(min_length=1)


@router.get("")
def holds(
    session: SessionDep,
    status: Literal["open", "released", "rejected"] | None = Query(None),
    after: int = Query(0, ge=0, le=2**63 - 1, description="holds after this hold id"),
    limit: int = Query(1000, ge=1, le=1000),
) -> list[dict[str, Any]]:
    """Holds in id order, filtered and paged in the database: the next page starts
    ``after`` the last ``hold_id`` of this one."""
    return [h.to_dict() for h in list_holds(session, status=status, after=after, limit=limit)]


@router.post("/{hold_id}/resolve", responses=documented(400, 404, 409))
def resolve_hold(
    session: SessionDep, user: OperatorDep, hold_id: RowId, body: ResolveRequest
) -> dict[str, Any]:
    with committed(session, HoldError, 409):
        r = resolve(session, hold_id, body.decision, actor=user.username, reason=body.reason)
    return {
        "hold_id": r.hold_id,
        "decision": r.decision,
        "actor": r.actor,
        "reason": r.reason,
        "decided_at": r.decided_at.isoformat(),
    }
