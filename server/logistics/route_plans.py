"""Route plans as files come in and as drivers and maps see them.

* :func:`read_stops` / :func:`read_vehicles` — the CSV files of ``epr-server routes
  plan`` (formats in docs/routes.md and docs/examples/), every problem reported as
  ``file:line: field: reason``; nothing is planned from a file with a problem.
* :func:`store_plan` — a computed :class:`~server.logistics.routes.Plan` kept whole
  (stops with their coordinates in driving order, vehicles, unserved stops with
  reasons) in ``route_plans``, and in the audit log.
* :func:`load_plan`, :func:`list_plans`, :func:`geojson` — what the driver's list,
  the API and the map read, within the caller's contractor scope (another
  contractor's plan is "not found", like a missing one).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.identifiers import bin_problem
from server.ledger.audit import append, canonical_json
from server.ledger.route_plans import RoutePlan
from server.logistics.routes import Plan, Stop, Vehicle
from server.people.accounts import NotFound, Scope

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
STOP_FIELDS = ("id", "lat", "lon", "kg", "litres", "service_min")
VEHICLE_FIELDS = (
    "id",
    "depot_id",
    "depot_lat",
    "depot_lon",
    "capacity_kg",
    "capacity_litres",
    "shift_min",
)


class PlanFileError(ValueError):
    """Problems in a stops or vehicles file, one ``file:line: field: reason`` per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _rows(
    path: Path, required: Sequence[str], optional: Sequence[str]
) -> list[tuple[int, dict[str, str]]]:
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PlanFileError([f"{name}: {size} bytes, more than {MAX_FILE_BYTES}"])
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise PlanFileError([f"{name}: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise PlanFileError([f"{name}: not UTF-8 text"]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [f for f in required if f not in header]
    unknown = [h for h in header if h not in required and h not in optional]
    problems = [f"{name}:1: missing column {f}" for f in missing]
    problems += [f"{name}:1: unknown column {h}" for h in unknown]
    if problems:
        raise PlanFileError(problems)
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    for row in reader:
        if len(rows) >= MAX_ROWS:
            raise PlanFileError([f"{name}: more than {MAX_ROWS} rows"])
        if None in row:
            raise PlanFileError([f"{name}:{reader.line_num}: more cells than columns"])
        rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
    if not rows:
        raise PlanFileError([f"{name}: no rows"])
    return rows


def _number(
    problems: list[str],
    where: str,
    field: str,
    text: str,
    *,
    default: float | None,
    low: float,
    high: float,
) -> float | None:
    if text == "":
        if default is None:
            return None
        return default
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{where}: {field}: {text[:40]!r} is not a number")
        return default
    if not math.isfinite(value) or not low <= value <= high:
        problems.append(f"{where}: {field}: {text[:40]} is not between {low:g} and {high:g}")
        return default
    return value


def _ident(problems: list[str], where: str, field: str, text: str) -> str:
    if not text or len(text) > 64 or not text.isprintable():
        problems.append(f"{where}: {field}: {text[:40]!r} is not an id (1–64 printable characters)")
    return text


def _row_id(problems: list[str], where: str, text: str, seen: set[str]) -> str:
    """A row's own id, which no earlier row of the file may have."""
    ident = _ident(problems, where, "id", text)
    if ident in seen:
        problems.append(f"{where}: id: {ident} is repeated")
    seen.add(ident)
    return ident


def _position(
    problems: list[str], where: str, row: dict[str, str], lat: str, lon: str
) -> tuple[float | None, float | None]:
    """Latitude and longitude from the row's ``lat`` and ``lon`` columns."""
    return (
        _number(problems, where, lat, row[lat], default=0.0, low=-90, high=90),
        _number(problems, where, lon, row[lon], default=0.0, low=-180, high=180),
    )


def read_stops(path: Path) -> list[Stop]:
    problems: list[str] = []
    stops: list[Stop] = []
    seen: set[str] = set()
    for line, row in _rows(path, STOP_FIELDS[:3], STOP_FIELDS[3:]):
        where = f"{path.name}:{line}"
        sid = _row_id(problems, where, row["id"], seen)
        lat, lon = _position(problems, where, row, "lat", "lon")
        if row["lat"] == "" or row["lon"] == "":
            problems.append(f"{where}: lat/lon: empty")
        kg = _number(problems, where, "kg", row.get("kg", ""), default=0.0, low=0, high=1e6)
        litres = _number(
            problems, where, "litres", row.get("litres", ""), default=0.0, low=0, high=1e7
        )
        service = _number(
            problems, where, "service_min", row.get("service_min", ""), default=5.0, low=0, high=600
        )
        stops.append(Stop(sid, lat or 0.0, lon or 0.0, kg or 0.0, litres or 0.0, service or 0.0))
    if problems:
        raise PlanFileError(problems)
    return stops


def read_vehicles(path: Path) -> list[Vehicle]:
    problems: list[str] = []
    vehicles: list[Vehicle] = []
    seen: set[str] = set()
    for line, row in _rows(path, VEHICLE_FIELDS[:4], VEHICLE_FIELDS[4:]):
        where = f"{path.name}:{line}"
        vid = _row_id(problems, where, row["id"], seen)
        depot = _ident(problems, where, "depot_id", row["depot_id"])
        lat, lon = _position(problems, where, row, "depot_lat", "depot_lon")
        kg = _number(
            problems,
            where,
            "capacity_kg",
            row.get("capacity_kg", ""),
            default=None,
            low=1,
            high=1e6,
        )
        litres = _number(
            problems,
            where,
            "capacity_litres",
            row.get("capacity_litres", ""),
            default=None,
            low=1,
            high=1e7,
        )
        shift = _number(
            problems, where, "shift_min", row.get("shift_min", ""), default=480.0, low=1, high=1440
        )
        vehicles.append(Vehicle(vid, lat or 0.0, lon or 0.0, kg, litres, shift or 480.0, depot))
    if problems:
        raise PlanFileError(problems)
    return vehicles


def plan_body(plan: Plan, stops: Sequence[Stop], vehicles: Sequence[Vehicle]) -> dict[str, Any]:
    by_id = {s.id: s for s in stops}
    vmap = {v.id: v for v in vehicles}
    return {
        "method": plan.method,
        "routes": [
            {
                "vehicle": r.vehicle_id,
                "depot": {
                    "id": r.depot_id,
                    "lat": vmap[r.vehicle_id].depot_lat,
                    "lon": vmap[r.vehicle_id].depot_lon,
                },
                "metres": r.metres,
                "seconds": r.seconds,
                "kg": round(r.kg, 3),
                "litres": round(r.litres, 3),
                "stops": [
                    {
                        "id": sid,
                        "lat": by_id[sid].lat,
                        "lon": by_id[sid].lon,
                        "kg": by_id[sid].kg,
                        "litres": by_id[sid].litres,
                        "service_min": by_id[sid].service_min,
                    }
                    for sid in r.stops
                ],
            }
            for r in plan.routes
        ],
        "unserved": [{"id": u.stop_id, "reason": u.reason} for u in plan.unserved],
        "vehicles": [
            {
                "id": v.id,
                "depot_id": v.depot_id,
                "capacity_kg": v.capacity_kg,
                "capacity_litres": v.capacity_litres,
                "shift_min": v.shift_min,
            }
            for v in vehicles
        ],
        "notes": list(plan.notes),
    }


def store_plan(
    session: Session,
    plan: Plan,
    stops: Sequence[Stop],
    vehicles: Sequence[Vehicle],
    *,
    plan_date: date,
    by: str,
    now: datetime,
    name: str = "",
    contractor_bin: str | None = None,
) -> RoutePlan:
    if contractor_bin is not None and (problem := bin_problem(contractor_bin)):
        raise PlanFileError([f"contractor: {problem}"])
    body = canonical_json(plan_body(plan, stops, vehicles))
    row = RoutePlan(
        plan_date=plan_date,
        name=name[:200],
        contractor_bin=contractor_bin,
        method=plan.method,
        body=body,
        total_m=sum(r.metres for r in plan.routes),
        stops=plan.served,
        unserved=len(plan.unserved),
        created_at=now,
        created_by=by,
    )
    session.add(row)
    session.flush()
    append(
        session,
        actor=by,
        action="routes.plan",
        subject=f"route plan {row.id}",
        data={
            "date": plan_date.isoformat(),
            "routes": len(plan.routes),
            "stops": plan.served,
            "unserved": len(plan.unserved),
            "km": round(plan.km, 3),
            "contractor_bin": contractor_bin,
        },
        now=now,
    )
    return row


@dataclass(frozen=True)
class StoredPlan:
    id: int
    plan_date: date
    name: str
    contractor_bin: str | None
    method: str
    km: float
    stops: int
    unserved: int
    created_at: datetime
    created_by: str
    body: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.plan_date.isoformat(),
            "name": self.name,
            "contractor_bin": self.contractor_bin,
            "method": self.method,
            "km": round(self.km, 3),
            "stops": self.stops,
            "unserved": self.unserved,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def _view(row: RoutePlan, *, with_body: bool) -> StoredPlan:
    return StoredPlan(
        row.id,
        row.plan_date,
        row.name,
        row.contractor_bin,
        row.method,
        row.total_m / 1000,
        row.stops,
        row.unserved,
        row.created_at,
        row.created_by,
        json.loads(row.body) if with_body else {},
    )


def load_plan(session: Session, plan_id: int, scope: Scope) -> StoredPlan:
    row = session.get(RoutePlan, plan_id)
    what = f"route plan {plan_id}"
    if row is None:
        raise NotFound(what)
    if not scope.is_everything:
        scope.visible(row.contractor_bin, what)
    return _view(row, with_body=True)


def list_plans(session: Session, scope: Scope, *, limit: int = 200) -> list[StoredPlan]:
    q = select(RoutePlan).order_by(RoutePlan.plan_date.desc(), RoutePlan.id.desc()).limit(limit)
    if not scope.is_everything:
        q = q.where(RoutePlan.contractor_bin == scope.contractor_bin)
    return [_view(r, with_body=False) for r in session.scalars(q)]


def geojson(plan: StoredPlan, vehicle: str | None = None) -> dict[str, Any]:
    """The plan for a map: a line per route (depot → stops → depot), a point per stop
    with its order, coordinates as GeoJSON wants them (longitude first)."""
    features: list[dict[str, Any]] = []
    for route in plan.body["routes"]:
        if vehicle is not None and route["vehicle"] != vehicle:
            continue
        depot = route["depot"]
        path = [depot, *route["stops"], depot]
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[p["lon"], p["lat"]] for p in path],
                },
                "properties": {
                    "kind": "route",
                    "vehicle": route["vehicle"],
                    "depot": depot["id"],
                    "km": round(route["metres"] / 1000, 3),
                    "minutes": round(route["seconds"] / 60, 1),
                    "stops": len(route["stops"]),
                },
            }
        )
        for order, stop in enumerate(route["stops"], start=1):
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [stop["lon"], stop["lat"]]},
                    "properties": {
                        "kind": "stop",
                        "vehicle": route["vehicle"],
                        "order": order,
                        "id": stop["id"],
                        "kg": stop["kg"],
                        "litres": stop["litres"],
                    },
                }
            )
    if vehicle is not None and not features:
        raise NotFound(f"vehicle {vehicle} in route plan {plan.id}")
    return {"type": "FeatureCollection", "features": features}
