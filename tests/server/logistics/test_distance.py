"""Distance matrices: haversine × road factor, and an OSRM table served locally."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from server.logistics.distance import DistanceError, haversine_m, haversine_matrix, osrm_matrix

KARAGANDA = (49.8047, 73.1094)
TEMIRTAU = (50.0549, 72.9646)


def test_haversine_between_two_towns() -> None:
    # About 29.7 km as the crow flies between the two town centres.
    assert 29_000 < haversine_m(KARAGANDA, TEMIRTAU) < 30_500


def test_matrix_applies_the_road_factor_and_speed() -> None:
    m = haversine_matrix([KARAGANDA, TEMIRTAU], road_factor=1.3, speed_kmh=60)
    line = haversine_m(KARAGANDA, TEMIRTAU)
    assert m.metres[0][1] == m.metres[1][0] == round(line * 1.3)
    assert m.seconds[0][1] == round(line * 1.3 / (60 / 3.6))
    assert m.metres[0][0] == 0


def test_a_road_factor_below_one_is_refused() -> None:
    with pytest.raises(DistanceError, match="never shorter"):
        haversine_matrix([KARAGANDA], road_factor=0.9)


class _Osrm(BaseHTTPRequestHandler):
    answer: object = None
    paths: list[str] = []  # noqa: RUF012 - one list per test, set by the fixture

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        body = json.dumps(type(self).answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the paths instead."""


@pytest.fixture
def osrm() -> Iterator[tuple[str, type[_Osrm]]]:
    handler = type("Handler", (_Osrm,), {"answer": None, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_osrm_table_is_read(osrm: tuple[str, type[_Osrm]]) -> None:
    url, handler = osrm
    handler.answer = {
        "code": "Ok",
        "distances": [[0, 38500.4], [38900.6, 0]],
        "durations": [[0, 2100.2], [2150, 0]],
    }
    m = osrm_matrix(url, [KARAGANDA, TEMIRTAU])
    assert m.metres == [[0, 38500], [38901, 0]]
    assert m.seconds == [[0, 2100], [2150, 0]]
    # OSRM takes longitude first.
    assert handler.paths == [
        "/table/v1/driving/73.109400,49.804700;72.964600,50.054900?annotations=distance,duration"
    ]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"code": "InvalidQuery"}, "InvalidQuery"),
        (
            {"code": "Ok", "distances": [[0, None], [1, 0]], "durations": [[0, 1], [1, 0]]},
            "no road",
        ),
        ({"code": "Ok", "distances": [[0, 1]], "durations": [[0, 1], [1, 0]]}, "2×2"),
        ({"code": "Ok", "distances": [[0, -1], [1, 0]], "durations": [[0, 1], [1, 0]]}, "-1"),
        ([1, 2], "None"),
    ],
)
def test_osrm_bad_answers_are_refused(
    osrm: tuple[str, type[_Osrm]], answer: object, message: str
) -> None:
    url, handler = osrm
    handler.answer = answer
    with pytest.raises(DistanceError, match=message):
        osrm_matrix(url, [KARAGANDA, TEMIRTAU])


def test_osrm_unreachable_and_bad_urls_are_refused() -> None:
    with pytest.raises(DistanceError, match="expected http"):
        osrm_matrix("file:///etc/passwd", [KARAGANDA])
    with pytest.raises(DistanceError, match=r"127\.0\.0\.1:9"):
        osrm_matrix("http://127.0.0.1:9", [KARAGANDA], timeout_s=2)


def test_routes_are_planned_over_the_osrm_table(osrm: tuple[str, type[_Osrm]]) -> None:
    from server.logistics.routes import Stop, Vehicle, matrix_source, plan_routes

    url, handler = osrm
    # Depot, then the two stops in the order given: the plan measures what OSRM answered.
    handler.answer = {
        "code": "Ok",
        "distances": [[0, 1000, 9000], [1000, 0, 1500], [9000, 1500, 0]],
        "durations": [[0, 100, 900], [100, 0, 150], [900, 150, 0]],
    }
    plan = plan_routes(
        [Stop("b", *TEMIRTAU, service_min=0), Stop("a", *KARAGANDA, service_min=0)],
        [Vehicle("t", 49.9, 73.0)],
        time_limit_s=0.2,
        matrix=matrix_source(url),
    )
    assert plan.routes[0].metres == 1000 + 1500 + 9000
    assert plan.routes[0].seconds == 100 + 150 + 900
    assert len(handler.paths) == 1
