"""Route plans on the pages: the list of stored plans, and a plan as the driver's list —
one sheet per vehicle, stops in driving order, printable (print styles in
``static/routes.css``). A contractor sees only the plans of its own trucks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from server.api.deps import ContractorScope, CurrentUser, RowId, SessionDep
from server.logistics.route_plans import list_plans, load_plan
from server.people.accounts import NotFound
from server.web.render import PageDep

router = APIRouter(include_in_schema=False)


@router.get("/routes")
def routes_page(
    page: PageDep, session: SessionDep, user: CurrentUser, scope: ContractorScope
) -> Response:
    return page.render("routes/list.html", plans=list_plans(session, scope))


@router.get("/routes/{plan_id}")
def driver_list(
    page: PageDep,
    session: SessionDep,
    user: CurrentUser,
    scope: ContractorScope,
    plan_id: RowId,
    vehicle: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    plan = load_plan(session, plan_id, scope)
    routes = [r for r in plan.body["routes"] if vehicle in (None, "", r["vehicle"])]
    if vehicle and not routes:
        raise NotFound(f"vehicle {vehicle} in route plan {plan_id}")
    return page.render("routes/driver.html", plan=plan, routes=routes, vehicle=vehicle)
