"""Distances and travel times between points given by latitude and longitude.

Two sources, one shape (a square matrix of metres and one of seconds):

* :func:`haversine_matrix` — the great-circle distance times a *road factor*. Roads
  are longer than the straight line; 1.3 is the usual figure for rural and mixed
  road networks (published detour indices lie between about 1.2 in dense cities and
  1.4–1.6 in sparse ones) and the default here. Time is that distance at
  ``speed_kmh``.
* :func:`osrm_matrix` — an OSRM ``table`` service (``EPR_OSRM_URL``), which knows the
  real roads: ``GET {url}/table/v1/driving/{lon,lat;…}?annotations=distance,duration``.

Nothing here touches the ledger; the route planner takes whichever matrix it is given.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

EARTH_RADIUS_M = 6_371_008.8
DEFAULT_ROAD_FACTOR = 1.3
DEFAULT_SPEED_KMH = 40.0
#: OSRM's own default cap on a table request is 100 locations; servers started with a
#: larger ``--max-table-size`` accept more, so the caller may raise it.
OSRM_MAX_LOCATIONS = 10_000


class DistanceError(ValueError):
    """A distance matrix could not be made; the message says why."""


@dataclass(frozen=True)
class Matrix:
    """Metres and seconds from every point to every other, in the order given."""

    metres: list[list[int]]
    seconds: list[list[int]]


Point = tuple[float, float]
"""(latitude, longitude) in degrees."""


def haversine_m(a: Point, b: Point) -> float:
    lat1, lon1 = math.radians(a[0]), math.radians(a[1])
    lat2, lon2 = math.radians(b[0]), math.radians(b[1])
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def haversine_matrix(
    points: Sequence[Point],
    *,
    road_factor: float = DEFAULT_ROAD_FACTOR,
    speed_kmh: float = DEFAULT_SPEED_KMH,
) -> Matrix:
    if road_factor < 1:
        raise DistanceError(f"road factor {road_factor}: a road is never shorter than the line")
    if speed_kmh <= 0:
        raise DistanceError(f"speed {speed_kmh} km/h: must be positive")
    metres_per_s = speed_kmh / 3.6
    n = len(points)
    metres = [[0] * n for _ in range(n)]
    seconds = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            d = haversine_m(points[i], points[j]) * road_factor
            metres[i][j] = metres[j][i] = round(d)
            seconds[i][j] = seconds[j][i] = round(d / metres_per_s)
    return Matrix(metres, seconds)


def osrm_matrix(base_url: str, points: Sequence[Point], *, timeout_s: float = 30.0) -> Matrix:
    """The OSRM ``table`` answer for ``points`` (metres and seconds, rounded)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DistanceError(f"OSRM URL {base_url!r}: expected http(s)://host[:port][/prefix]")
    if not 0 < len(points) <= OSRM_MAX_LOCATIONS:
        raise DistanceError(f"OSRM table: {len(points)} points (1 to {OSRM_MAX_LOCATIONS})")
    coords = ";".join(f"{lon:.6f},{lat:.6f}" for lat, lon in points)
    url = f"{base_url.rstrip('/')}/table/v1/driving/{coords}?annotations=distance,duration"
    try:
        # The scheme is checked above: only http(s) reaches urlopen.
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            body = json.loads(response.read(64 * 1024 * 1024))
    except (OSError, ValueError) as exc:
        raise DistanceError(f"OSRM table at {parts.netloc}: {exc}") from exc
    if not isinstance(body, dict) or body.get("code") != "Ok":
        code = body.get("code") if isinstance(body, dict) else None
        raise DistanceError(f"OSRM table at {parts.netloc}: answered code {code!r}")
    return Matrix(
        _square(body.get("distances"), len(points), "distances"),
        _square(body.get("durations"), len(points), "durations"),
    )


def _square(rows: object, n: int, field: str) -> list[list[int]]:
    if not isinstance(rows, list) or len(rows) != n:
        raise DistanceError(f"OSRM table: {field} is not a {n}×{n} matrix")
    out: list[list[int]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n:
            raise DistanceError(f"OSRM table: {field} row {i} is not {n} long")
        cells: list[int] = []
        for j, cell in enumerate(row):
            if cell is None:
                # OSRM answers null where no road connects two points.
                raise DistanceError(f"OSRM table: no road from point {i} to point {j}")
            if not isinstance(cell, int | float) or isinstance(cell, bool) or cell < 0:
                raise DistanceError(f"OSRM table: {field}[{i}][{j}] = {cell!r}")
            cells.append(round(cell))
        out.append(cells)
    return out
