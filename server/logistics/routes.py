"""Collection routes: which vehicle empties which due containers, in what order.

Pure functions over plain dataclasses — no ledger, no pages — so the due list, the
command line and the benchmark all feed the same planner:

* :func:`plan_routes` — OR-Tools' vehicle routing solver: one tour per vehicle from its
  depot (a reception point) back to it, within the vehicle's capacity in kilograms
  and in litres and within its shift (driving plus service time); a stop that does
  not fit anywhere is dropped with a reason rather than making the plan infeasible.
  The first solution comes from the cheapest-arc path (quick to build, leaving the
  time to the search; measured better than parallel cheapest insertion and savings
  on the benchmark) — or, when the baseline
  below already runs out of room, from the baseline's tours, so the plan never serves
  fewer stops than the baseline — then guided local search improves it until
  ``time_limit_s``, its moves tried between each stop and its nearest neighbours
  only (2 %, at least 20), which is what makes it improve on large problems.
* :func:`nearest_neighbour_routes` — the naive baseline with the same vehicles and
  limits: each vehicle in turn drives to the nearest unvisited stop that still fits,
  and goes home when none does.

Distances come from :mod:`server.logistics.distance` (haversine × road factor, or an
OSRM table when one is configured). Demands and capacities are counted in whole
grams and millilitres so the solver's integer arithmetic is exact enough.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from server.logistics.distance import (
    DEFAULT_ROAD_FACTOR,
    DEFAULT_SPEED_KMH,
    DistanceError,
    Matrix,
    Point,
    haversine_matrix,
    osrm_matrix,
)

#: Cost of leaving a stop unserved, in metres: larger than any tour, so the solver
#: drops a stop only when no vehicle can take it.
DROP_PENALTY_M = 10_000_000_000
UNLIMITED = 10**15
#: The share of the other stops a local search move considers, and the least number.
NEIGHBOURS_RATIO = 0.02
MIN_NEIGHBOURS = 20

REASON_TOO_HEAVY = "heavier or larger than any vehicle's capacity"
REASON_TOO_FAR = "too far from every depot for a shift"
REASON_NO_ROOM = "no vehicle had capacity or shift time left"


class RouteError(ValueError):
    """Input the planner cannot work with; the message names the stop or vehicle."""


@dataclass(frozen=True)
class Stop:
    """A container (or any pick-up) to visit: where, how much, and for how long."""

    id: str
    lat: float
    lon: float
    kg: float = 0.0
    litres: float = 0.0
    service_min: float = 5.0


@dataclass(frozen=True)
class Vehicle:
    """A truck for one shift, starting and ending at its depot."""

    id: str
    depot_lat: float
    depot_lon: float
    capacity_kg: float | None = None
    """None: weight does not limit this vehicle."""
    capacity_litres: float | None = None
    """None: volume does not limit this vehicle."""
    shift_min: float = 480.0
    depot_id: str = ""


@dataclass(frozen=True)
class Route:
    vehicle_id: str
    depot_id: str
    stops: tuple[str, ...]
    """Stop ids in the order driven, depot excluded (it is both ends)."""
    metres: int
    seconds: int
    """Driving plus service time."""
    kg: float
    litres: float

    @property
    def km(self) -> float:
        return self.metres / 1000


@dataclass(frozen=True)
class Unserved:
    stop_id: str
    reason: str


@dataclass(frozen=True)
class Plan:
    routes: tuple[Route, ...]
    unserved: tuple[Unserved, ...]
    method: str
    solve_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def km(self) -> float:
        return sum(r.metres for r in self.routes) / 1000

    @property
    def served(self) -> int:
        return sum(len(r.stops) for r in self.routes)


MatrixSource = Callable[[Sequence[Point]], Matrix]


def matrix_source(
    osrm_url: str | None = None,
    *,
    road_factor: float = DEFAULT_ROAD_FACTOR,
    speed_kmh: float = DEFAULT_SPEED_KMH,
) -> MatrixSource:
    """OSRM when a URL is configured, else haversine × road factor."""
    if osrm_url:
        return lambda points: osrm_matrix(osrm_url, points)
    return lambda points: haversine_matrix(points, road_factor=road_factor, speed_kmh=speed_kmh)


@dataclass(frozen=True)
class _Problem:
    """Stops and vehicles as the solvers see them: node 0..d-1 are depots, then stops."""

    stops: tuple[Stop, ...]
    vehicles: tuple[Vehicle, ...]
    depot_of: tuple[int, ...]
    """Node of each vehicle's depot."""
    n_depots: int
    matrix: Matrix
    grams: tuple[int, ...]
    millilitres: tuple[int, ...]
    service_s: tuple[int, ...]
    cap_g: tuple[int, ...]
    cap_ml: tuple[int, ...]
    shift_s: tuple[int, ...]
    skipped: tuple[Unserved, ...]

    def node_of_stop(self, index: int) -> int:
        return self.n_depots + index


def _check(stops: Sequence[Stop], vehicles: Sequence[Vehicle]) -> None:
    if not vehicles:
        raise RouteError("no vehicles")
    seen: set[str] = set()
    for s in stops:
        if not s.id or s.id in seen:
            raise RouteError(f"stop {s.id!r}: empty or repeated id")
        seen.add(s.id)
        _check_point(f"stop {s.id}", s.lat, s.lon)
        for name, value in (("kg", s.kg), ("litres", s.litres), ("service_min", s.service_min)):
            if not math.isfinite(value) or value < 0:
                raise RouteError(f"stop {s.id}: {name} = {value} (must be ≥ 0)")
    vseen: set[str] = set()
    for v in vehicles:
        if not v.id or v.id in vseen:
            raise RouteError(f"vehicle {v.id!r}: empty or repeated id")
        vseen.add(v.id)
        _check_point(f"vehicle {v.id} depot", v.depot_lat, v.depot_lon)
        for name, cap in (("capacity_kg", v.capacity_kg), ("capacity_litres", v.capacity_litres)):
            if cap is not None and (not math.isfinite(cap) or cap <= 0):
                raise RouteError(f"vehicle {v.id}: {name} = {cap} (must be > 0 or empty)")
        if not math.isfinite(v.shift_min) or v.shift_min <= 0:
            raise RouteError(f"vehicle {v.id}: shift_min = {v.shift_min} (must be > 0)")


def _check_point(what: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise RouteError(f"{what}: ({lat}, {lon}) is not a latitude and longitude")


def _problem(stops: Sequence[Stop], vehicles: Sequence[Vehicle], source: MatrixSource) -> _Problem:
    _check(stops, vehicles)
    depot_points: list[Point] = []
    depot_of: list[int] = []
    for v in vehicles:
        point = (v.depot_lat, v.depot_lon)
        if point not in depot_points:
            depot_points.append(point)
        depot_of.append(depot_points.index(point))
    cap_g = tuple(
        UNLIMITED if v.capacity_kg is None else int(v.capacity_kg * 1000) for v in vehicles
    )
    cap_ml = tuple(
        UNLIMITED if v.capacity_litres is None else int(v.capacity_litres * 1000) for v in vehicles
    )
    shift_s = tuple(int(v.shift_min * 60) for v in vehicles)
    # A stop no vehicle could ever carry is left out before solving, with its reason.
    kept: list[Stop] = []
    skipped: list[Unserved] = []
    for s in stops:
        g, ml = math.ceil(s.kg * 1000), math.ceil(s.litres * 1000)
        if not any(g <= cg and ml <= cm for cg, cm in zip(cap_g, cap_ml, strict=True)):
            skipped.append(Unserved(s.id, REASON_TOO_HEAVY))
        else:
            kept.append(s)
    points = depot_points + [(s.lat, s.lon) for s in kept]
    try:
        matrix = source(points)
    except DistanceError as exc:
        raise RouteError(str(exc)) from exc
    n_depots = len(depot_points)
    service = [0] * n_depots + [round(s.service_min * 60) for s in kept]
    # ... and so is a stop whose round trip from the nearest depot outlasts every shift.
    reachable: list[Stop] = []
    reachable_nodes: list[int] = []
    for i, s in enumerate(kept):
        node = n_depots + i
        trip = min(
            matrix.seconds[depot_of[k]][node]
            + service[node]
            + matrix.seconds[node][depot_of[k]]
            - shift_s[k]
            for k in range(len(vehicles))
        )
        if trip > 0:
            skipped.append(Unserved(s.id, REASON_TOO_FAR))
        else:
            reachable.append(s)
            reachable_nodes.append(node)
    if len(reachable) != len(kept):
        keep_nodes = list(range(n_depots)) + reachable_nodes
        matrix = Matrix(
            [[matrix.metres[a][b] for b in keep_nodes] for a in keep_nodes],
            [[matrix.seconds[a][b] for b in keep_nodes] for a in keep_nodes],
        )
        service = [service[a] for a in keep_nodes]
    return _Problem(
        stops=tuple(reachable),
        vehicles=tuple(vehicles),
        depot_of=tuple(depot_of),
        n_depots=n_depots,
        matrix=matrix,
        grams=(0,) * n_depots + tuple(math.ceil(s.kg * 1000) for s in reachable),
        millilitres=(0,) * n_depots + tuple(math.ceil(s.litres * 1000) for s in reachable),
        service_s=tuple(service),
        cap_g=cap_g,
        cap_ml=cap_ml,
        shift_s=shift_s,
        skipped=tuple(skipped),
    )


def _route(p: _Problem, k: int, nodes: Sequence[int]) -> Route:
    """The route of vehicle ``k`` through stop ``nodes`` (depot excluded), measured."""
    depot = p.depot_of[k]
    path = [depot, *nodes, depot]
    metres = sum(p.matrix.metres[a][b] for a, b in itertools.pairwise(path))
    seconds = sum(p.matrix.seconds[a][b] + p.service_s[a] for a, b in itertools.pairwise(path))
    stops = [p.stops[n - p.n_depots] for n in nodes]
    return Route(
        vehicle_id=p.vehicles[k].id,
        depot_id=p.vehicles[k].depot_id,
        stops=tuple(s.id for s in stops),
        metres=metres,
        seconds=seconds,
        kg=sum(s.kg for s in stops),
        litres=sum(s.litres for s in stops),
    )


def plan_routes(
    stops: Sequence[Stop],
    vehicles: Sequence[Vehicle],
    *,
    time_limit_s: float = 30.0,
    matrix: MatrixSource | None = None,
) -> Plan:
    """Routes for ``vehicles`` through ``stops`` with OR-Tools (see the module doc)."""
    from ortools.constraint_solver import pywrapcp, routing_enums_pb2

    if not 0 < time_limit_s <= 3600:
        raise RouteError(f"time limit {time_limit_s} s: between 0 and 3600")
    started = time.monotonic()
    p = _problem(stops, vehicles, matrix or matrix_source())
    if not p.stops:
        return Plan((), p.skipped, "or-tools", time.monotonic() - started)
    n_vehicles = len(p.vehicles)
    manager = pywrapcp.RoutingIndexManager(
        len(p.matrix.metres), n_vehicles, list(p.depot_of), list(p.depot_of)
    )
    routing = pywrapcp.RoutingModel(manager)
    # Matrices registered whole run in C++; per-arc Python callbacks would dominate the time.
    arc = routing.RegisterTransitMatrix(p.matrix.metres)
    routing.SetArcCostEvaluatorOfAllVehicles(arc)
    timed = [
        [p.matrix.seconds[a][b] + p.service_s[a] for b in range(len(p.matrix.seconds))]
        for a in range(len(p.matrix.seconds))
    ]
    time_cb = routing.RegisterTransitMatrix(timed)
    routing.AddDimensionWithVehicleCapacity(time_cb, 0, list(p.shift_s), True, "time")
    if any(c < UNLIMITED for c in p.cap_g):
        weight = routing.RegisterUnaryTransitVector(list(p.grams))
        routing.AddDimensionWithVehicleCapacity(weight, 0, list(p.cap_g), True, "kg")
    if any(c < UNLIMITED for c in p.cap_ml):
        volume = routing.RegisterUnaryTransitVector(list(p.millilitres))
        routing.AddDimensionWithVehicleCapacity(volume, 0, list(p.cap_ml), True, "litres")
    for i in range(len(p.stops)):
        routing.AddDisjunction([manager.NodeToIndex(p.node_of_stop(i))], DROP_PENALTY_M)
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    # Local search moves tried only between near neighbours: on 1,300 stops each pass
    # is far quicker, so guided local search gets through more of them in the time and
    # depends less on how much of the shared CPU it gets (make bench-logistics, 30 s:
    # 0.78-0.83 x the baseline's km with it; 0.81-0.97 x with every pair tried).
    params.ls_operator_neighbors_ratio = NEIGHBOURS_RATIO
    params.ls_operator_min_neighbors = MIN_NEIGHBOURS
    naive = _nearest_neighbour(p)
    remaining = max(0.1, time_limit_s - (time.monotonic() - started))
    params.time_limit.FromMilliseconds(int(remaining * 1000))
    solution = None
    if any(u.reason == REASON_NO_ROOM for u in naive.unserved):
        # Where capacity or shifts run out, start from the baseline's tours: the search
        # only accepts better objectives (km + a drop penalty larger than any tour), so
        # it never ends serving fewer stops than the baseline did.
        routing.CloseModelWithParameters(params)
        tours = [[manager.NodeToIndex(n) for n in tour] for tour in _node_routes(p, naive)]
        start = routing.ReadAssignmentFromRoutes(tours, True)
        if start is not None:
            solution = routing.SolveFromAssignmentWithParameters(start, params)
    if solution is None:
        solution = routing.SolveWithParameters(params)
    if solution is None:
        # With every stop droppable an empty plan is always feasible; no answer means the
        # time limit ran out before a first solution: fall back to the baseline.
        return Plan(
            naive.routes,
            naive.unserved,
            "nearest-neighbour",
            time.monotonic() - started,
            ("the solver found no solution within the time limit",),
        )
    routes: list[Route] = []
    served: set[int] = set()
    for k in range(n_vehicles):
        nodes: list[int] = []
        index = solution.Value(routing.NextVar(routing.Start(k)))
        while not routing.IsEnd(index):
            nodes.append(manager.IndexToNode(index))
            index = solution.Value(routing.NextVar(index))
        served.update(nodes)
        if nodes:
            routes.append(_route(p, k, nodes))
    dropped = tuple(
        Unserved(s.id, REASON_NO_ROOM)
        for i, s in enumerate(p.stops)
        if p.node_of_stop(i) not in served
    )
    return Plan(tuple(routes), p.skipped + dropped, "or-tools", time.monotonic() - started)


def _node_routes(p: _Problem, plan: Plan) -> list[list[int]]:
    """``plan``'s stops as solver nodes, one list per vehicle in vehicle order."""
    node = {s.id: p.node_of_stop(i) for i, s in enumerate(p.stops)}
    by_vehicle = {r.vehicle_id: [node[s] for s in r.stops] for r in plan.routes}
    return [by_vehicle.get(v.id, []) for v in p.vehicles]


def nearest_neighbour_routes(
    stops: Sequence[Stop], vehicles: Sequence[Vehicle], *, matrix: MatrixSource | None = None
) -> Plan:
    """The naive baseline (see the module doc) under the same limits as :func:`plan_routes`."""
    started = time.monotonic()
    p = _problem(stops, vehicles, matrix or matrix_source())
    plan = _nearest_neighbour(p)
    return Plan(plan.routes, plan.unserved, plan.method, time.monotonic() - started)


def _nearest_neighbour(p: _Problem) -> Plan:
    left = set(range(p.n_depots, p.n_depots + len(p.stops)))
    routes: list[Route] = []
    m, t = p.matrix.metres, p.matrix.seconds
    for k in range(len(p.vehicles)):
        depot = p.depot_of[k]
        here, grams, ml, secs = depot, 0, 0, 0
        nodes: list[int] = []
        while True:
            best: int | None = None
            for n in left:
                if grams + p.grams[n] > p.cap_g[k] or ml + p.millilitres[n] > p.cap_ml[k]:
                    continue
                back = secs + p.service_s[here] + t[here][n] + p.service_s[n] + t[n][depot]
                if back > p.shift_s[k]:
                    continue
                if best is None or (m[here][n], n) < (m[here][best], best):
                    best = n
            if best is None:
                break
            secs += p.service_s[here] + t[here][best]
            grams += p.grams[best]
            ml += p.millilitres[best]
            nodes.append(best)
            left.discard(best)
            here = best
        if nodes:
            routes.append(_route(p, k, nodes))
    dropped = tuple(Unserved(p.stops[n - p.n_depots].id, REASON_NO_ROOM) for n in sorted(left))
    return Plan(tuple(routes), p.skipped + dropped, "nearest-neighbour")
