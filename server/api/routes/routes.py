"""Route plans: the stored plans a caller may see, one plan in full, and a plan as
GeoJSON for the map (routes as lines in driving order, stops as numbered points)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from server.api.deps import ContractorScope, RowId, SessionDep, documented
from server.logistics.route_plans import geojson, list_plans, load_plan

router = APIRouter(prefix="/api/v1/routes", tags=["routes"])


@router.get("")
def plans(session: SessionDep, scope: ContractorScope) -> list[dict[str, Any]]:
    return [p.summary() for p in list_plans(session, scope)]


@router.get("/{plan_id}", responses=documented(404))
def plan(session: SessionDep, scope: ContractorScope, plan_id: RowId) -> dict[str, Any]:
    stored = load_plan(session, plan_id, scope)
    return {**stored.summary(), **stored.body}


@router.get("/{plan_id}/geojson", responses=documented(404))
def plan_geojson(
    session: SessionDep,
    scope: ContractorScope,
    plan_id: RowId,
    vehicle: str | None = Query(None, max_length=64),
) -> JSONResponse:
    stored = load_plan(session, plan_id, scope)
    return JSONResponse(geojson(stored, vehicle), media_type="application/geo+json")
