"""Alarms (staff) and dead letters (operators only, as on the pages), read-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from server.api.deps import OperatorDep, SessionDep
from server.fleet.alarms import alarm_dict, list_alarms
from server.fleet.dead_letters import dead_letter_dict, list_dead_letters

router = APIRouter(prefix="/api/v1", tags=["operations"])


@router.get("/alarms")
def alarms(
    session: SessionDep,
    all: bool = Query(False, description="include cleared alarms"),
    device_id: str | None = None,
    limit: int = Query(200, ge=1, le=5000),
) -> list[dict[str, Any]]:
    rows = list_alarms(session, active_only=not all, device_id=device_id, limit=limit)
    return [alarm_dict(r) for r in rows]


@router.get("/dead-letters")
def dead_letters(
    session: SessionDep,
    user: OperatorDep,
    status: str = Query("open", pattern="^(open|resolved|discarded|all)$"),
    device_id: str | None = None,
    limit: int = Query(200, ge=1, le=5000),
) -> list[dict[str, Any]]:
    rows = list_dead_letters(
        session, status=None if status == "all" else status, device_id=device_id, limit=limit
    )
    return [dead_letter_dict(r) for r in rows]
