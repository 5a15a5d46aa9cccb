"""Logistics: places as GeoJSON, a container's history and forecast, the due list
(JSON, CSV, XLSX) and the monthly mass balance. A contractor sees only its own
containers; another's is "not found", as if it did not exist."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, TypedDict

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from server.api.deps import (
    ContractorScope,
    OperatorDep,
    SessionDep,
    StaffDep,
    check_period,
    committed,
    documented,
)
from server.ledger.places import Place
from server.logistics import densities, due, mass_balance, outline, places
from server.logistics.history import container_detail
from server.regions import REGIONS

router = APIRouter(prefix="/api/v1", tags=["logistics"])

IDENT = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# Empty is "any" (what a filter form sends when nothing is picked).
CATEGORY = r"^([a-z][a-z0-9_]{0,63})?$"
BIN = r"^(\d{12})?$"
Region = Annotated[str | None, Query(max_length=64, description="a region of Kazakhstan")]
Category = Annotated[str | None, Query(pattern=CATEGORY)]
Contractor = Annotated[str | None, Query(pattern=BIN, description="BIN (staff only)")]


def check_region(region: str | None) -> str | None:
    if region and region not in REGIONS:
        raise HTTPException(422, detail=f"region {region[:64]!r} is not a region of Kazakhstan")
    return region or None


class FilterArgs(TypedDict):
    region: str | None
    category: str | None
    contractor: str | None


@dataclass(frozen=True)
class Filters:
    """What a list of places is narrowed to; ``None`` is "any"."""

    region: str | None
    category: str | None
    contractor: str | None

    def args(self) -> FilterArgs:
        """As keyword arguments (``region``, ``category``, ``contractor``)."""
        return FilterArgs(region=self.region, category=self.category, contractor=self.contractor)


def place_filters(
    region: Region = None, category: Category = None, contractor: Contractor = None
) -> Filters:
    """The query's filters, empty ones "any"; an unknown region is refused (422)."""
    return Filters(check_region(region), category or None, contractor or None)


PlaceFilters = Annotated[Filters, Depends(place_filters)]


def load_densities(request: Request) -> densities.Densities:
    try:
        return densities.load(request.app.state.settings.densities_file)
    except densities.DensityError as exc:
        raise HTTPException(500, detail=str(exc)) from None


def save_place(
    request: Request, session: Session, place_id: str, changes: Mapping[str, str], *, by: str
) -> Place:
    """An operator's change to a place, checked against the configured outline and the
    densities' categories (the API and the page both change places this way)."""
    table = load_densities(request)
    return places.update_place(
        session,
        place_id,
        changes,
        by=by,
        within=places.outline_for(request.app.state.settings.places_within),
        categories=table.categories,
    )


@router.get("/places", responses=documented(404))
def list_places(
    session: SessionDep,
    scope: ContractorScope,
    filters: PlaceFilters,
    kind: Annotated[Literal["reception_point", "container"] | None, Query()] = None,
) -> dict[str, Any]:
    """Reception points and containers as a GeoJSON FeatureCollection."""
    views = places.list_places(session, scope, kind=kind, **filters.args())
    return places.feature_collection(views)


@router.get(
    "/places/outline",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
)
def country_outline() -> Response:
    """Kazakhstan's outline (Natural Earth 1:50m), GeoJSON, as shipped with the package."""
    return Response(
        outline.geojson_text(),
        media_type="application/geo+json",
        headers={"Cache-Control": "max-age=86400"},
    )


@router.get(
    "/places/regions",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
)
def region_outlines() -> Response:
    """Kazakhstan's regions (Natural Earth admin-1, pre-2018), GeoJSON, as shipped."""
    return Response(
        outline.regions_geojson_text(),
        media_type="application/geo+json",
        headers={"Cache-Control": "max-age=86400"},
    )


@router.get("/places/{place_id}", responses=documented(404))
def one_place(session: SessionDep, scope: ContractorScope, place_id: str) -> dict[str, Any]:
    place = places.visible_place(session, scope, place_id)
    views = places.list_places(session, scope, kind=place.kind)
    view = next(v for v in views if v.place.place_id == place_id)
    feature: dict[str, Any] = places.feature_collection([view])["features"][0]
    return feature


class PlaceChange(BaseModel):
    """The fields an operator may change; omitted ones stay as they are."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    region: str | None = Field(None, max_length=64)
    latitude: str | None = Field(None, max_length=40)
    longitude: str | None = Field(None, max_length=40)
    capacity_l: str | None = Field(None, max_length=12)
    category: str | None = Field(None, max_length=64)
    contractor_bin: str | None = Field(None, max_length=12)
    site_id: str | None = Field(None, max_length=64)


@router.patch("/places/{place_id}", responses=documented(400, 404, 409))
def change_place(
    request: Request,
    session: SessionDep,
    user: OperatorDep,
    place_id: str,
    body: PlaceChange,
) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    with committed(session, places.PlaceProblems, 422):
        place = save_place(request, session, place_id, changes, by=user.username)
    return {"place_id": place.place_id, "updated_at": place.updated_at.isoformat()}


@router.get("/containers/{container_id}", responses=documented(404))
def container_history(
    session: SessionDep,
    scope: ContractorScope,
    container_id: str,
    days: Annotated[int, Query(ge=1, le=28)] = 14,
    threshold: Annotated[float, Query(gt=0, le=100)] = 80.0,
) -> dict[str, Any]:
    """Hourly fill (last, min, max), emptied and other events, the forecast, alarms."""
    now = datetime.now(UTC)
    d = container_detail(session, scope, container_id, now=now, days=days, threshold=threshold)
    at = d.forecast.at(now)
    return {
        "container_id": container_id,
        "fill_pct": format(d.state.fill_pct, "f") if d.state else None,
        "measured_at": d.state.measured_at.isoformat() if d.state else None,
        "threshold_pct": threshold,
        "predicted_at": at.isoformat() if at else None,
        "rate_pct_per_day": round(d.forecast.rate_per_day, 2),
        "hours": [
            {"hour": p.hour.isoformat(), "last": p.last, "min": p.low, "max": p.high}
            for p in d.points
        ],
        "events": [
            {"event": e.event, "at": e.measured_at.isoformat(), "fill_pct": format(e.fill_pct, "f")}
            for e in d.events
        ],
        "alarms": [
            {"code": a.code, "state": a.state, "raised_at": a.raised_at.isoformat()}
            for a in d.alarms
        ],
        "health": d.health,
    }


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/due",
    responses={
        200: {
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
def due_list(
    session: SessionDep,
    scope: ContractorScope,
    filters: PlaceFilters,
    horizon_h: Annotated[float, Query(gt=0, le=24 * 14)] = due.DEFAULT_HORIZON_H,
    threshold: Annotated[float, Query(gt=0, le=100)] = 80.0,
    silent_h: Annotated[float, Query(gt=0, le=24 * 30)] = due.DEFAULT_SILENT_H,
    format: Annotated[Literal["json", "csv", "xlsx"], Query()] = "json",
) -> Any:
    """Containers due within the horizon, overflowing or silent (see docs/logistics.md)."""
    now = datetime.now(UTC)
    items = due.due_list(
        session,
        scope,
        now=now,
        horizon_h=horizon_h,
        threshold=threshold,
        silent_h=silent_h,
        **filters.args(),
    )
    return due_response(items, format, now)


def due_response(items: list[due.DueItem], format: str, now: datetime) -> Any:
    stamp = now.strftime("%Y%m%d-%H%M")
    if format == "csv":
        return Response(
            due.as_csv(items),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="due-{stamp}.csv"'},
        )
    if format == "xlsx":
        return Response(
            due.as_xlsx(items),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="due-{stamp}.xlsx"'},
        )
    return [{**i.row, "hours": None if i.due_at is None else _hours(i.due_at, now)} for i in items]


def _hours(at: datetime, now: datetime) -> float | None:
    value = (at - now).total_seconds() / 3600
    return None if math.isinf(value) else round(value, 1)


@router.get("/mass-balance/{period}", responses=documented(422))
def balance(
    request: Request,
    session: SessionDep,
    user: StaffDep,
    period: str,
) -> list[dict[str, Any]]:
    check_period(period)
    table = load_densities(request)
    tolerance = table.tolerance_pct
    return [
        {
            "contractor_bin": b.contractor_bin,
            "category": b.category,
            "period": b.period,
            "pickups": b.pickups,
            "emptied_litres": format(b.litres, "f"),
            "estimate_kg": _kg(b.estimate_g),
            "weighed_kg": _kg(b.weighed_g),
            "ratio": None if b.ratio is None else format(b.ratio, "f"),
            "surplus_kg": _kg(b.surplus_g(tolerance)),
            "surplus_tickets": b.surplus_tickets(tolerance),
        }
        for b in mass_balance.balances(session, period, table)
    ]


def _kg(grams: int) -> str:
    return format(Decimal(grams).scaleb(-3), "f")


@router.post("/mass-balance/{period}/holds", responses=documented(409, 422))
def hold_surplus(
    request: Request, session: SessionDep, user: OperatorDep, period: str
) -> dict[str, Any]:
    check_period(period)
    table = load_densities(request)
    with committed(session, ValueError, 409):
        result = mass_balance.hold_surplus(session, period, table, by=user.username)
    return {"balances": result.balances, "over": result.over, "new_holds": result.new_holds}
