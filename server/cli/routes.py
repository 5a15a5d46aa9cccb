"""``epr-server routes``: plan a day's collection routes from CSV files or from the due
list, list and show plans."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from server.cli.common import add_actor_options, cli_actor, ledger_sessions
from server.config import Settings


def cmd_routes(settings: Settings, args: argparse.Namespace) -> int:
    from server.logistics.route_plans import (
        PlanFileError,
        list_plans,
        load_plan,
        read_stops,
        read_vehicles,
        store_plan,
    )
    from server.logistics.routes import (
        RouteError,
        matrix_source,
        nearest_neighbour_routes,
        plan_routes,
    )
    from server.people.accounts import NotFound, Scope

    sessions = ledger_sessions(settings)
    if args.action == "list":
        with sessions() as session:
            for p in list_plans(session, Scope.everything()):
                print(
                    f"{p.id:>6} {p.plan_date} {p.km:>9.1f} km {p.stops:>5} stops"
                    f" {p.unserved:>4} unserved  {p.name}"
                )
        return 0
    if args.action == "show":
        if args.plan_id is None:
            print("routes show needs a plan id", file=sys.stderr)
            return 2
        try:
            with sessions() as session:
                stored = load_plan(session, args.plan_id, Scope.everything())
        except NotFound as exc:
            print(exc, file=sys.stderr)
            return 1
        for route in stored.body["routes"]:
            order = " → ".join(s["id"] for s in route["stops"])
            print(
                f"{route['vehicle']} ({route['depot']['id']}): {route['metres'] / 1000:.1f} km,"
                f" {route['seconds'] / 60:.0f} min: {order}"
            )
        for u in stored.body["unserved"]:
            print(f"unserved {u['id']}: {u['reason']}")
        return 0
    source_opts = (("--region", args.region),) if args.due else (("--stops", args.stops),)
    missing = [
        o for o, v in (("--date", args.date), ("--vehicles", args.vehicles), *source_opts) if not v
    ]
    if missing:
        print(f"routes plan needs {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.due and args.stops:
        print("routes plan takes --stops or --due, not both", file=sys.stderr)
        return 2
    try:
        plan_date = date.fromisoformat(args.date)
    except ValueError:
        print(f"--date {args.date!r}: expected YYYY-MM-DD", file=sys.stderr)
        return 2
    actor = cli_actor(settings, sessions, args)
    if args.due:
        return _plan_due(settings, sessions, args, plan_date, actor.name)
    try:
        stops = read_stops(Path(args.stops))
        vehicles = read_vehicles(Path(args.vehicles))
        source = matrix_source(settings.osrm_url, road_factor=settings.road_factor)
        plan = plan_routes(stops, vehicles, time_limit_s=args.time_limit, matrix=source)
        naive = nearest_neighbour_routes(stops, vehicles, matrix=source) if args.baseline else None
        with sessions.begin() as session:
            row = store_plan(
                session,
                plan,
                stops,
                vehicles,
                plan_date=plan_date,
                by=actor.name,
                now=datetime.now(UTC),
                name=args.name or Path(args.stops).stem,
                contractor_bin=args.contractor,
            )
            plan_id = row.id
    except (PlanFileError, RouteError) as exc:
        print(exc, file=sys.stderr)
        return 1
    for r in plan.routes:
        print(f"{r.vehicle_id}: {len(r.stops)} stops, {r.km:.1f} km, {r.seconds / 60:.0f} min")
    for u in plan.unserved:
        print(f"unserved {u.stop_id}: {u.reason}")
    extra = f" naive_km={naive.km:.1f}" if naive is not None else ""
    print(
        f"route plan {plan_id}: routes={len(plan.routes)} stops={plan.served}"
        f" unserved={len(plan.unserved)} km={plan.km:.1f}{extra} solve_s={plan.solve_s:.1f}"
    )
    return 0


def _plan_due(
    settings: Settings, sessions: Any, args: argparse.Namespace, plan_date: date, by: str
) -> int:
    """``routes plan --due``: the region's due list planned and stored."""
    from server.logistics.densities import DensityError
    from server.logistics.densities import load as load_densities
    from server.logistics.due_routes import plan_due
    from server.logistics.route_plans import PlanFileError, read_vehicles
    from server.logistics.routes import RouteError, matrix_source
    from server.regions import REGIONS

    if args.region not in REGIONS:
        print(f"--region {args.region!r}: not one of {', '.join(sorted(REGIONS))}", file=sys.stderr)
        return 2
    try:
        densities = load_densities(settings.densities_file)
        vehicles = read_vehicles(Path(args.vehicles))
        with sessions.begin() as session:
            done = plan_due(
                session,
                vehicles,
                densities,
                region=args.region,
                contractor=args.contractor,
                plan_date=plan_date,
                now=datetime.now(UTC),
                by=by,
                time_limit_s=args.time_limit,
                matrix=matrix_source(settings.osrm_url, road_factor=settings.road_factor),
                name=args.name or "",
            )
            plan_id = done.row.id
    except (PlanFileError, RouteError, DensityError) as exc:
        print(exc, file=sys.stderr)
        return 1
    plan = done.plan
    for r in plan.routes:
        print(f"{r.vehicle_id}: {len(r.stops)} stops, {r.km:.1f} km, {r.seconds / 60:.0f} min")
    for u in plan.unserved:
        print(f"unserved {u.stop_id}: {u.reason}")
    for k in done.skipped:
        print(f"skipped {k.container_id}: {k.reason}")
    print(
        f"route plan {plan_id}: routes={len(plan.routes)} stops={plan.served}"
        f" unserved={len(plan.unserved)} skipped={len(done.skipped)} km={plan.km:.1f}"
        f" solve_s={plan.solve_s:.1f}"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("routes", help="plan collection routes; list and show stored plans")
    p.add_argument("action", choices=["plan", "list", "show"])
    p.add_argument("plan_id", nargs="?", type=int)
    p.add_argument("--date", help="plan: the day the routes are driven (YYYY-MM-DD)")
    p.add_argument("--stops", help="plan: CSV of stops (docs/routes.md)")
    p.add_argument(
        "--due",
        action="store_true",
        help="plan: the stops are the region's due list (with --region; depots: reception points)",
    )
    p.add_argument("--region", help="plan --due: the region whose due containers are planned")
    p.add_argument("--vehicles", help="plan: CSV of vehicles (docs/examples/vehicles.csv)")
    p.add_argument("--time-limit", type=float, default=30.0, help="solver seconds (default 30)")
    p.add_argument("--name", help="plan: a name for the list (default: the stops file's)")
    p.add_argument(
        "--contractor",
        help="plan: the BIN whose trucks drive it (it may see it); with --due, its containers only",
    )
    p.add_argument(
        "--baseline", action="store_true", help="plan: also print the nearest-neighbour km"
    )
    add_actor_options(p)
    p.set_defaults(func=cmd_routes)
