"""Route planning: limits kept, reasons given, and better than the naive tours."""

from __future__ import annotations

import math
import random

import pytest

from server.logistics.distance import Matrix
from server.logistics.routes import (
    REASON_NO_ROOM,
    REASON_TOO_FAR,
    REASON_TOO_HEAVY,
    RouteError,
    Stop,
    Vehicle,
    nearest_neighbour_routes,
    plan_routes,
)

DEPOT = (49.82, 73.08)


def _truck(name: str, **kw: float | None) -> Vehicle:
    return Vehicle(name, *DEPOT, depot_id="karaganda-rp-01", **kw)  # type: ignore[arg-type]


def _city(n: int, seed: int = 3) -> list[Stop]:
    rng = random.Random(seed)
    return [
        Stop(
            f"c{i}",
            DEPOT[0] + rng.uniform(-0.08, 0.08),
            DEPOT[1] + rng.uniform(-0.12, 0.12),
            kg=rng.uniform(20, 80),
            litres=rng.uniform(500, 1100),
        )
        for i in range(n)
    ]


def test_every_stop_served_once_within_limits_and_shorter_than_naive() -> None:
    stops = _city(60)
    trucks = [_truck(f"t{k}", capacity_kg=1200, capacity_litres=20000) for k in range(3)]
    plan = plan_routes(stops, trucks, time_limit_s=0.5)
    naive = nearest_neighbour_routes(stops, trucks)
    visited = [s for r in plan.routes for s in r.stops]
    assert sorted(visited) == sorted(s.id for s in stops)
    by_id = {s.id: s for s in stops}
    for route in plan.routes:
        assert sum(by_id[s].kg for s in route.stops) <= 1200
        assert sum(by_id[s].litres for s in route.stops) <= 20000
        assert route.seconds <= 480 * 60
        assert route.depot_id == "karaganda-rp-01"
    assert naive.served == 60
    assert plan.km < naive.km


def test_stops_that_fit_nowhere_come_back_with_their_reason() -> None:
    stops = [
        *_city(5),
        Stop("heavy", DEPOT[0], DEPOT[1] + 0.01, kg=5000),
        Stop("balkhash", 46.85, 74.99, kg=10),  # ~400 km away: no 4-hour shift reaches it
    ]
    plan = plan_routes(stops, [_truck("t1", capacity_kg=1000, shift_min=240)], time_limit_s=0.2)
    reasons = {u.stop_id: u.reason for u in plan.unserved}
    assert reasons == {"heavy": REASON_TOO_HEAVY, "balkhash": REASON_TOO_FAR}
    assert plan.served == 5


def test_capacity_runs_out_and_the_rest_is_unserved() -> None:
    stops = [Stop(f"s{i}", DEPOT[0] + 0.01 * i, DEPOT[1], kg=100) for i in range(1, 6)]
    for plan in (
        plan_routes(stops, [_truck("t1", capacity_kg=250)], time_limit_s=0.2),
        nearest_neighbour_routes(stops, [_truck("t1", capacity_kg=250)]),
    ):
        assert plan.served == 2
        assert [u.reason for u in plan.unserved] == [REASON_NO_ROOM] * 3


def test_a_given_matrix_is_used_as_is() -> None:
    # A one-way street: going round anticlockwise is far shorter than the reverse.
    big = 10_000
    metres = [[0, 1, big], [big, 0, 1], [1, big, 0]]
    stops = [Stop("a", 49.0, 73.0), Stop("b", 49.1, 73.1)]
    plan = plan_routes(
        stops,
        [Vehicle("t", 48.9, 72.9)],
        time_limit_s=0.2,
        matrix=lambda points: Matrix(metres, [[0] * 3] * 3),
    )
    assert plan.routes[0].stops == ("a", "b")
    assert plan.routes[0].metres == 3


@pytest.mark.parametrize(
    ("stops", "vehicles", "message"),
    [
        ([Stop("a", 91, 0)], [Vehicle("t", *DEPOT)], "stop a"),
        ([Stop("a", math.nan, 0)], [Vehicle("t", *DEPOT)], "stop a"),
        ([Stop("a", 1, 1), Stop("a", 2, 2)], [Vehicle("t", *DEPOT)], "repeated"),
        ([Stop("a", 1, 1, kg=-3)], [Vehicle("t", *DEPOT)], "kg = -3"),
        ([Stop("a", 1, 1)], [], "no vehicles"),
        ([Stop("a", 1, 1)], [Vehicle("t", *DEPOT, capacity_kg=0)], "capacity_kg"),
        ([Stop("a", 1, 1)], [Vehicle("t", *DEPOT, shift_min=-1)], "shift_min"),
    ],
)
def test_bad_input_is_refused_with_what_is_wrong(
    stops: list[Stop], vehicles: list[Vehicle], message: str
) -> None:
    with pytest.raises(RouteError, match=message):
        plan_routes(stops, vehicles, time_limit_s=0.2)


def test_no_stops_is_an_empty_plan() -> None:
    plan = plan_routes([], [Vehicle("t", *DEPOT)], time_limit_s=0.2)
    assert plan.routes == ()
    assert plan.unserved == ()


def test_short_of_trucks_the_plan_serves_at_least_what_the_baseline_does() -> None:
    stops = _city(80, seed=5)
    trucks = [_truck(f"t{k}", capacity_kg=700, capacity_litres=9000) for k in range(2)]
    plan = plan_routes(stops, trucks, time_limit_s=0.5)
    naive = nearest_neighbour_routes(stops, trucks)
    assert naive.served < 80
    assert plan.served >= naive.served
    assert {u.reason for u in plan.unserved} == {REASON_NO_ROOM}
