"""Kazakhstan's outline: the shipped GeoJSON, the point-in-polygon check, and how the
file is made from Natural Earth.

``server/data/kazakhstan.geojson`` is cut from the ``world-atlas`` package's
``countries-50m.json`` (Natural Earth 1:50m admin-0, public domain) once, when the
data is vendored::

    npm pack world-atlas@2 && tar xzf world-atlas-2.0.2.tgz
    python -m server.logistics.outline package/countries-50m.json server/data/kazakhstan.geojson

so the package ships a few kilobytes instead of the world. The map page draws it, and
place imports are checked against it (``EPR_PLACES_WITHIN``). The 1:50m line is
accurate to a few kilometres: a place within that of the border may be judged on
the wrong side, which for a check of mistyped coordinates (swapped latitude and
longitude, a missing minus, a point in the sea) is enough.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

COUNTRY: Final = "Kazakhstan"
DATA_FILE: Final = "kazakhstan.geojson"

Ring = list[tuple[float, float]]
"""(longitude, latitude) pairs, closed."""
Edges = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


@dataclass(frozen=True, slots=True)
class Outline:
    """A country's polygons (outer rings with their holes) and bounding box."""

    polygons: tuple[tuple[Ring, ...], ...]
    bbox: tuple[float, float, float, float]
    """(west, south, east, north)."""
    edges: tuple[tuple[Edges, ...], ...] = field(default=(), compare=False, repr=False)
    """The rings' edges as arrays, made once (the check runs per imported row)."""

    def contains(self, latitude: float, longitude: float) -> bool:
        west, south, east, north = self.bbox
        if not (west <= longitude <= east and south <= latitude <= north):
            return False
        for rings in self.edges:
            x1, y1 = rings[0][0], rings[0][1]
            if not (x1.min() <= longitude <= x1.max() and y1.min() <= latitude <= y1.max()):
                continue
            if _inside(rings[0], longitude, latitude) and not any(
                _inside(hole, longitude, latitude) for hole in rings[1:]
            ):
                return True
        return False

    @classmethod
    def from_geojson(cls, data: dict[str, Any]) -> Outline:
        geometry = data["geometry"] if data.get("type") == "Feature" else data
        coords = geometry["coordinates"]
        if geometry["type"] == "Polygon":
            coords = [coords]
        polygons = tuple(
            tuple([(float(x), float(y)) for x, y in ring] for ring in polygon) for polygon in coords
        )
        xs = [x for p in polygons for x, _ in p[0]]
        ys = [y for p in polygons for _, y in p[0]]
        edges = tuple(tuple(_edges(ring) for ring in polygon) for polygon in polygons)
        return cls(polygons, (min(xs), min(ys), max(xs), max(ys)), edges)


def _edges(ring: Ring) -> Edges:
    """A ring's edges as arrays: start x, start y, end x, end y."""
    points = np.asarray(ring, dtype=np.float64)
    ends = np.roll(points, -1, axis=0)
    return points[:, 0], points[:, 1], ends[:, 0], ends[:, 1]


def _inside(edges: Edges, x: float, y: float) -> bool:
    """Even-odd ray casting over every edge at once."""
    x1, y1, x2, y2 = edges
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = (x2 - x1) * (y - y1) / (y2 - y1) + x1
    return bool(np.count_nonzero(crosses & (x < at)) % 2)


def geojson_text() -> str:
    """The shipped outline as the map loads it."""
    return files("server").joinpath("data", DATA_FILE).read_text(encoding="utf-8")


@cache
def kazakhstan() -> Outline:
    return Outline.from_geojson(json.loads(geojson_text()))


# ------------------------------------------------------------------ vendoring step


def _arcs(topology: dict[str, Any]) -> list[list[tuple[float, float]]]:
    """Decode quantised, delta-encoded TopoJSON arcs into degrees."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    out = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((round(x * sx + tx, 5), round(y * sy + ty, 5)))
        out.append(points)
    return out


def _ring(indexes: Sequence[int], arcs: list[list[tuple[float, float]]]) -> Ring:
    ring: Ring = []
    for i in indexes:
        points = arcs[i] if i >= 0 else arcs[~i][::-1]
        ring.extend(points if not ring else points[1:])
    return ring


def country_feature(topology: dict[str, Any], name: str = COUNTRY) -> dict[str, Any]:
    """One country of a world-atlas topology as a GeoJSON Feature (MultiPolygon)."""
    arcs = _arcs(topology)
    for geometry in topology["objects"]["countries"]["geometries"]:
        if geometry.get("properties", {}).get("name") != name:
            continue
        polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        coordinates = [[_ring(ring, arcs) for ring in polygon] for polygon in polygons]
        return {
            "type": "Feature",
            "properties": {"name": name, "source": "Natural Earth 1:50m via world-atlas 2"},
            "geometry": {"type": "MultiPolygon", "coordinates": coordinates},
        }
    raise ValueError(f"{name!r} is not in the topology")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m server.logistics.outline COUNTRIES_50M_JSON OUT_GEOJSON")
        return 2
    topology = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    feature = country_feature(topology)
    Path(args[1]).write_text(json.dumps(feature, separators=(",", ":")) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
