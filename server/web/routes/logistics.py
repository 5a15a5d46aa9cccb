"""Logistics pages: the map (with a stored route plan drawn over it, ``?plan=ID``), a
container's history, the due list (with CSV and XLSX
downloads, and for operators a form planning the region's routes from it), editing a
place (operators) and the monthly mass balance (staff).

Each calls the functions the JSON API calls (``server.logistics``). The map draws
with the vendored Leaflet and the shipped outline only; when ``EPR_MAP_TILES_URL`` is
set, the page's content security policy admits that one tile host for images.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Query
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy import select

from server.api.deps import (
    ContractorScope,
    CurrentUser,
    OperatorDep,
    SessionDep,
    StaffDep,
    is_period,
)
from server.api.routes.logistics import (
    PlaceFilters,
    due_response,
    load_densities,
    save_place,
)
from server.ledger.models import Ticket
from server.logistics import due, due_routes, mass_balance, places
from server.logistics.history import container_detail
from server.logistics.route_plans import PlanFileError, load_plan
from server.logistics.routes import RouteError, Vehicle, matrix_source
from server.money.amounts import LOCAL_TZ
from server.people.accounts import Role, Scope
from server.regions import REGIONS
from server.web import fill_chart, flash
from server.web.render import PageDep

router = APIRouter(include_in_schema=False)

MAX_FORM_VEHICLES = 50
FORM_TIME_LIMIT_S = 10.0
"""Solver seconds for a plan asked for on the page (the command line takes longer)."""


def _choices(session: SessionDep, scope: Scope) -> dict[str, object]:
    """The filters' options: what the caller's places hold."""
    views = places.list_places(session, scope)
    return {
        "regions": sorted({v.place.region for v in views}),
        "categories": sorted({v.place.category for v in views if v.place.category}),
        "contractors": sorted({v.place.contractor_bin for v in views if v.place.contractor_bin}),
    }


def _query(**params: str | None) -> str:
    return urlencode({k: v for k, v in params.items() if v})


@router.get("/map")
def map_page(
    page: PageDep,
    session: SessionDep,
    user: CurrentUser,
    scope: ContractorScope,
    filters: PlaceFilters,
    plan: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> Response:
    scope.narrow(filters.contractor)  # another contractor's BIN: 404 like everything else
    if plan is not None:
        load_plan(session, plan, scope)  # another contractor's plan: 404 as well
    settings = page.request.app.state.settings
    tiles = settings.map_tiles_url or ""
    response = page.render(
        "logistics/map.html",
        200,
        plan=plan,
        query=_query(**filters.args()),
        tiles=tiles,
        **filters.args(),
        **_choices(session, scope),
    )
    if tiles:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(tiles))
        response.headers["Content-Security-Policy"] = response.headers[
            "Content-Security-Policy"
        ].replace("img-src 'self' data:", f"img-src 'self' data: {origin}")
    return response


@router.get("/containers/{container_id}")
def container_page(
    page: PageDep,
    session: SessionDep,
    user: CurrentUser,
    scope: ContractorScope,
    container_id: str,
    days: Annotated[int, Query(ge=1, le=28)] = 14,
) -> Response:
    now = datetime.now(UTC)
    detail = container_detail(session, scope, container_id, now=now, days=days)
    table = load_densities(page.request)
    proofs = mass_balance.pickups_between(
        session, detail.since, now, table, scope=scope, container_id=container_id
    )
    t = page.t
    chart = fill_chart.svg(
        detail,
        now=now,
        labels={
            "title": t("logistics.chart_title", id=container_id),
            "threshold": t("logistics.threshold"),
            "emptied": t("logistics.emptied"),
            "forecast": t("logistics.predicted"),
        },
    )
    return page.render(
        "logistics/container.html",
        d=detail,
        # Built from numbers and html.escape()d text only (server/web/fill_chart.py).
        chart=Markup(chart),  # noqa: S704
        predicted=detail.forecast.at(now),
        pickups=proofs,
        tickets=_ticket_refs(session, [t for p in proofs for t in p.tickets]),
        days=days,
        local=LOCAL_TZ,
    )


def _ticket_refs(session: SessionDep, ids: list[int]) -> dict[int, tuple[str, int]]:
    """Ticket id -> (``DEVICE:SEQ``, net grams), for the pickups table."""
    if not ids:
        return {}
    rows = session.execute(
        select(Ticket.id, Ticket.device_id, Ticket.seq, Ticket.net_g).where(Ticket.id.in_(ids))
    )
    return {tid: (f"{device}:{seq}", net_g) for tid, device, seq, net_g in rows}


@router.get("/due")
def due_page(
    page: PageDep,
    session: SessionDep,
    user: CurrentUser,
    scope: ContractorScope,
    filters: PlaceFilters,
    horizon_h: Annotated[int, Query(ge=1, le=24 * 14)] = due.DEFAULT_HORIZON_H,
    format: Annotated[Literal["html", "csv", "xlsx"], Query()] = "html",
) -> Response:
    now = datetime.now(UTC)
    items = due.due_list(session, scope, now=now, horizon_h=horizon_h, **filters.args())
    if format != "html":
        answer: Response = due_response(items, format, now)
        return answer
    groups: dict[tuple[str, str], list[due.DueItem]] = {}
    for item in items:
        groups.setdefault((item.place.region, item.place.contractor_bin or ""), []).append(item)
    query = _query(**filters.args())
    region = filters.region
    depots = (
        sorted(due_routes.reception_points(session, region))
        if region and user.role is Role.OPERATOR
        else []
    )
    return page.render(
        "logistics/due.html",
        200,
        groups=groups,
        count=len(items),
        horizon_h=horizon_h,
        query=query + ("&" if query else "") + f"horizon_h={horizon_h}",
        depots=depots,
        today=datetime.now(LOCAL_TZ).date().isoformat(),
        **filters.args(),
        **_choices(session, scope),
    )


@router.post("/due/routes")
def plan_due_routes(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    region: Annotated[str, Form(max_length=64)],
    depot: Annotated[str, Form(max_length=64)],
    plan_date: Annotated[str, Form(max_length=10)],
    vehicles: Annotated[int, Form(ge=1, le=MAX_FORM_VEHICLES)] = 1,
    capacity_kg: Annotated[float, Form(gt=0, le=100_000)] = 6000.0,
    capacity_litres: Annotated[float, Form(gt=0, le=1_000_000)] = 30_000.0,
    shift_min: Annotated[float, Form(gt=0, le=1440)] = 480.0,
    contractor: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """The region's due list planned for ``vehicles`` identical trucks based at one
    reception point, stored like a plan from files; then its driver's list."""
    if region not in REGIONS:
        return page.refuse("/due", f"region {region!r} is not a region")
    back = "/due?" + _query(region=region, contractor=contractor)
    try:
        day = date.fromisoformat(plan_date)
    except ValueError:
        return page.refuse(back, f"date {plan_date[:10]!r}: expected YYYY-MM-DD")
    trucks = [
        Vehicle(
            f"{depot}-truck-{k + 1}",
            0.0,
            0.0,
            capacity_kg=capacity_kg,
            capacity_litres=capacity_litres,
            shift_min=shift_min,
            depot_id=depot,
        )
        for k in range(vehicles)
    ]
    settings = page.request.app.state.settings
    try:
        done = due_routes.plan_due(
            session,
            trucks,
            load_densities(page.request),
            region=region,
            contractor=contractor or None,
            plan_date=day,
            now=datetime.now(UTC),
            by=user.username,
            time_limit_s=FORM_TIME_LIMIT_S,
            matrix=matrix_source(settings.osrm_url, road_factor=settings.road_factor),
        )
        session.commit()
    except (PlanFileError, RouteError) as exc:
        session.rollback()
        return page.refuse(back, exc)
    return flash.redirect(
        page.request,
        f"/routes/{done.row.id}",
        "ok",
        page.t(
            "logistics.routes_planned",
            id=done.row.id,
            stops=done.plan.served,
            unserved=len(done.plan.unserved),
            skipped=len(done.skipped),
        ),
    )


@router.get("/places/{place_id}/edit")
def edit_place_form(
    page: PageDep, session: SessionDep, user: OperatorDep, place_id: str
) -> Response:
    place = places.visible_place(session, Scope.everything(), place_id)
    return page.render(
        "logistics/place_edit.html", place=place, regions=sorted(REGIONS), problems=[]
    )


@router.post("/places/{place_id}/edit")
def edit_place(
    page: PageDep,
    session: SessionDep,
    user: OperatorDep,
    place_id: str,
    name: Annotated[str, Form(max_length=200)] = "",
    region: Annotated[str, Form(max_length=64)] = "",
    latitude: Annotated[str, Form(max_length=40)] = "",
    longitude: Annotated[str, Form(max_length=40)] = "",
    capacity_l: Annotated[str, Form(max_length=12)] = "",
    category: Annotated[str, Form(max_length=64)] = "",
    contractor_bin: Annotated[str, Form(max_length=12)] = "",
    site_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    place = places.visible_place(session, Scope.everything(), place_id)
    target = f"/containers/{place_id}" if place.kind == "container" else "/map"
    changes = {
        "name": name,
        "region": region,
        "latitude": latitude,
        "longitude": longitude,
        "capacity_l": capacity_l,
        "category": category,
        "contractor_bin": contractor_bin,
        "site_id": site_id,
    }
    return page.act(
        session,
        target,
        lambda: save_place(page.request, session, place_id, changes, by=user.username),
        places.PlaceProblems,
        lambda p: page.t("logistics.place_saved", id=p.place_id, who=user.username),
    )


@router.get("/mass-balance")
def mass_balance_page(
    page: PageDep,
    session: SessionDep,
    user: StaffDep,
    period: Annotated[str | None, Query(max_length=7)] = None,
) -> Response:
    period = period or datetime.now(LOCAL_TZ).strftime("%Y-%m")
    if not is_period(period):
        raise HTTPException(422, detail=f"period {period!r} is not YYYY-MM")
    table = load_densities(page.request)
    rows = mass_balance.balances(session, period, table)
    return page.render(
        "logistics/mass_balance.html",
        period=period,
        rows=rows,
        tolerance=table.tolerance_pct,
        densities=table.kg_per_litre,
    )


@router.post("/mass-balance/{period}/holds")
def mass_balance_holds(
    page: PageDep, session: SessionDep, user: OperatorDep, period: str
) -> Response:
    if not is_period(period):
        raise HTTPException(422, detail=f"period {period!r} is not YYYY-MM")
    table = load_densities(page.request)
    return page.act(
        session,
        f"/mass-balance?period={period}",
        lambda: mass_balance.hold_surplus(session, period, table, by=user.username),
        ValueError,
        lambda r: page.t("logistics.holds_made", count=r.new_holds, over=r.over),
    )
