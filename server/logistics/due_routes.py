"""A day's routes straight from the due list: the due and overflowing containers of a
region (and contractor) become the planner's stops, vehicles are based at the
region's reception points, and the plan is stored like one planned from files.

* :func:`due_stops` — a due list's containers as :class:`~server.logistics.routes.Stop`:
  their coordinates and expected load, litres = fill % (capped at 100) × capacity,
  kilograms = litres × the category's density (:mod:`server.logistics.densities`).
  Silent containers are left out (their level is unknown; someone must look first),
  and so is a container without a capacity (nothing to size a truck by); both are
  returned as skipped with the reason.
* :func:`at_reception_points` — vehicles whose ``depot_id`` must name a reception
  point of the region; the depot's coordinates are the place's, whatever a file says.
* :func:`plan_due` — the two above, the solver (given 0.05 s per stop, at least 1 s
  and at most the caller's limit), and :func:`store_plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.identifiers import bin_problem
from server.ledger.places import Place
from server.ledger.route_plans import RoutePlan
from server.logistics.densities import Densities
from server.logistics.due import DueItem, due_list
from server.logistics.route_plans import PlanFileError, store_plan
from server.logistics.routes import MatrixSource, Plan, Stop, Vehicle, plan_routes
from server.people.accounts import Scope

DEFAULT_SERVICE_MIN = 4.0
"""Minutes at a container: park, lift, empty, set down."""
SECONDS_PER_STOP = 0.05
"""Solver time per stop (at least 1 s, at most the caller's limit)."""
SKIP_SILENT = "silent: its level is unknown, look before collecting"
SKIP_NO_CAPACITY = "no capacity recorded: its load cannot be estimated"


@dataclass(frozen=True)
class Skipped:
    container_id: str
    reason: str


@dataclass(frozen=True)
class DuePlan:
    row: RoutePlan
    plan: Plan
    stops: tuple[Stop, ...]
    skipped: tuple[Skipped, ...]


def due_stops(
    items: Sequence[DueItem],
    kg_per_litre: Mapping[str, Decimal],
    *,
    service_min: float = DEFAULT_SERVICE_MIN,
) -> tuple[list[Stop], list[Skipped]]:
    """The due list's containers as stops with their expected load (see the module doc)."""
    stops: list[Stop] = []
    skipped: list[Skipped] = []
    for item in items:
        p = item.place
        if item.reason == "silent" or item.fill_pct is None:
            skipped.append(Skipped(p.place_id, SKIP_SILENT))
            continue
        if not p.capacity_l:
            skipped.append(Skipped(p.place_id, SKIP_NO_CAPACITY))
            continue
        fill = min(item.fill_pct, Decimal(100))
        litres = Decimal(p.capacity_l) * fill / 100
        kg = litres * kg_per_litre.get(p.category or "", Decimal(0))
        stops.append(
            Stop(p.place_id, p.latitude, p.longitude, float(kg), float(litres), service_min)
        )
    return stops, skipped


def reception_points(session: Session, region: str) -> dict[str, Place]:
    """The region's reception points by id, where its vehicles may be based."""
    rows = session.scalars(
        select(Place).where(Place.kind == "reception_point", Place.region == region)
    )
    return {p.place_id: p for p in rows}


def at_reception_points(
    vehicles: Sequence[Vehicle], points: Mapping[str, Place], *, region: str
) -> list[Vehicle]:
    """``vehicles`` with their depot at the reception point their ``depot_id`` names
    (its coordinates); a depot that is not one of ``points`` is refused by name."""
    problems = [
        f"vehicle {v.id}: depot_id {v.depot_id!r} is not a reception point of {region}"
        for v in vehicles
        if v.depot_id not in points
    ]
    if problems:
        raise PlanFileError(problems)
    return [
        replace(v, depot_lat=points[v.depot_id].latitude, depot_lon=points[v.depot_id].longitude)
        for v in vehicles
    ]


def plan_due(
    session: Session,
    vehicles: Sequence[Vehicle],
    densities: Densities,
    *,
    region: str,
    contractor: str | None,
    plan_date: date,
    now: datetime,
    by: str,
    time_limit_s: float,
    matrix: MatrixSource | None = None,
    name: str = "",
) -> DuePlan:
    """Plan and store the routes for the region's due list as it is ``now``."""
    if contractor is not None and (problem := bin_problem(contractor)):
        raise PlanFileError([f"contractor: {problem}"])
    points = reception_points(session, region)
    if not points:
        raise PlanFileError([f"region {region}: no reception point to base vehicles at"])
    based = at_reception_points(vehicles, points, region=region)
    items = due_list(session, Scope.everything(), now=now, region=region, contractor=contractor)
    stops, skipped = due_stops(items, densities.kg_per_litre)
    if not stops:
        raise PlanFileError([f"region {region}: no container due to collect"])
    # Guided local search never stops by itself: a few stops get a second, not the
    # whole limit.
    limit = min(time_limit_s, max(1.0, len(stops) * SECONDS_PER_STOP))
    plan = plan_routes(stops, based, time_limit_s=limit, matrix=matrix)
    row = store_plan(
        session,
        plan,
        stops,
        based,
        plan_date=plan_date,
        by=by,
        now=now,
        name=name or f"due {region} {plan_date.isoformat()}",
        contractor_bin=contractor,
    )
    return DuePlan(row, plan, tuple(stops), tuple(skipped))
