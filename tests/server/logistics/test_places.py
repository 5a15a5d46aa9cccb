"""Places: imports from CSV and XLSX checked row by row (inside Kazakhstan, known
regions and categories, valid BINs), hostile files refused with FILE:LINE:COLUMN, and
operators' edits audited."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import AuditEntry
from server.ledger.places import Place
from server.logistics import densities, places
from server.logistics.outline import kazakhstan
from server.people.accounts import NotFound, Scope
from tests.support.accounts import BIN_A, BIN_B

HEADER = "place_id,kind,name,region,latitude,longitude,capacity_l,category,contractor_bin,site_id"
GOOD = f"""{HEADER}
almaty-rp-01,reception_point,Almaty RP 1,Almaty,43.2567,76.9286,,,,
almaty-c01,container,Polymer 1,Almaty,43.2601,76.9402,1100,packaging_polymer,{BIN_A},almaty-rp-01
aktobe-c01,container,Lamps 1,Aktobe,"50,2839","57,1670",120,mercury_lamps,{BIN_B},
"""
CATEGORIES = densities.load().categories


def read(text: str | bytes, name: str = "places.csv") -> list[places.PlaceRow]:
    data = text.encode() if isinstance(text, str) else text
    return places.read_bytes(name, data, within=kazakhstan(), categories=CATEGORIES)


def problems(text: str | bytes, name: str = "places.csv") -> list[str]:
    with pytest.raises(places.PlaceProblems) as caught:
        read(text, name)
    return caught.value.problems


def test_outline_knows_kazakhstan_from_its_neighbours() -> None:
    k = kazakhstan()
    assert k.contains(43.2567, 76.9286)  # Almaty
    assert k.contains(51.1282, 71.4304)  # Astana
    assert k.contains(43.65, 51.20)  # Aktau, on the Caspian shore
    assert not k.contains(41.31, 69.24)  # Tashkent
    assert not k.contains(55.75, 37.62)  # Moscow
    assert not k.contains(42.87, 74.59)  # Bishkek
    assert not k.contains(76.9286, 43.2567)  # Almaty with the axes swapped


def test_csv_rows_are_read_with_decimal_commas() -> None:
    rows = read(GOOD)
    assert [r.place_id for r in rows] == ["almaty-rp-01", "almaty-c01", "aktobe-c01"]
    assert rows[2].latitude == pytest.approx(50.2839)
    assert rows[1].capacity_l == 1100
    assert rows[1].contractor_bin == BIN_A


def test_xlsx_rows_are_read_like_csv() -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADER.split(","))
    ws.append(
        ["c-1", "container", "Glass", "Astana", 51.13, 71.43, 1100, "packaging_glass", BIN_A, ""]
    )
    ws.append([None] * 10)  # spreadsheets end with blank rows
    out = io.BytesIO()
    wb.save(out)
    rows = read(out.getvalue(), "places.xlsx")
    assert [(r.place_id, r.capacity_l, r.latitude) for r in rows] == [("c-1", 1100, 51.13)]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            f"c-1,container,X,Almaty,76.9286,43.2567,1100,packaging_glass,{BIN_A},",
            "places.csv:2:latitude: 76.9286, 43.2567 is outside Kazakhstan"
            " (latitude and longitude swapped?)",
        ),
        (
            f"c-1,container,X,Almaty,41.31,69.24,1100,packaging_glass,{BIN_A},",
            "places.csv:2:latitude: 41.31, 69.24 is outside Kazakhstan",
        ),
        (
            f"c-1,container,X,Almaty,north,76.9,1100,packaging_glass,{BIN_A},",
            "places.csv:2:latitude: 'north' is not a latitude",
        ),
        (
            f"c-1,container,X,Almaty,NaN,76.9,1100,packaging_glass,{BIN_A},",
            "places.csv:2:latitude: 'NaN' is not a latitude",
        ),
        (
            f"c-1,container,X,Almaty,1e400,76.9,1100,packaging_glass,{BIN_A},",
            "places.csv:2:latitude: '1e400' is not a latitude",
        ),
        (
            f"c-1,container,X,Atlantis,43.2,76.9,1100,packaging_glass,{BIN_A},",
            "places.csv:2:region: 'Atlantis' is not a region of Kazakhstan",
        ),
        (
            f"c-1,container,X,Almaty,43.2,76.9,-5,packaging_glass,{BIN_A},",
            "places.csv:2:capacity_l: '-5' is not a whole number",
        ),
        (
            f"c-1,container,X,Almaty,43.2,76.9,1100,plutonium,{BIN_A},",
            "places.csv:2:category: 'plutonium' has no density",
        ),
        (
            "c-1,container,X,Almaty,43.2,76.9,1100,packaging_glass,123456789012,",
            "places.csv:2:contractor_bin: 123456789012 fails the BIN check digit",
        ),
        (
            "c-1,container,X,Almaty,43.2,76.9,1100,packaging_glass,,",
            "places.csv:2:contractor_bin: required for a container",
        ),
        (
            f"c-1,bunker,X,Almaty,43.2,76.9,1100,packaging_glass,{BIN_A},",
            "places.csv:2:kind: 'bunker' is not one of reception_point, container",
        ),
        (
            f"'; DROP TABLE places;--,container,X,Almaty,43.2,76.9,1100,packaging_glass,{BIN_A},",
            'places.csv:2:place_id: "\'; DROP TABLE places;--" is not an id',
        ),
        (
            f",container,X,Almaty,43.2,76.9,1100,packaging_glass,{BIN_A},",
            "places.csv:2:place_id: required",
        ),
    ],
)
def test_bad_rows_are_named_by_file_line_and_column(row: str, expected: str) -> None:
    found = problems(f"{HEADER}\n{row}\n")
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_and_nothing_is_half_read() -> None:
    text = (
        f"{HEADER}\n"
        f"c-1,container,X,Almaty,43.2,76.9,1100,packaging_glass,{BIN_A},\n"
        f"c-1,container,Y,Almaty,43.2,76.9,1100,packaging_glass,{BIN_A},\n"
        "c-2,container,Z,Nowhere,0,0,,,,\n"
    )
    found = problems(text)
    assert "places.csv:3:place_id: c-1 repeats places.csv:2" in found
    assert {p.split(":")[2] for p in found if p.startswith("places.csv:4:")} >= {
        "region",
        "latitude",
        "capacity_l",
        "category",
        "contractor_bin",
    }


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"place_id,kind\nx,container\n", "p.csv", "p.csv:1:region: required column missing"),
        (f"{HEADER},password\n".encode(), "p.csv", "p.csv:1:password: unknown column"),
        (
            f"{HEADER}\na,container,b,Almaty,43.2,76.9,1,packaging_glass,{BIN_A},,extra\n".encode(),
            "p.csv",
            "p.csv:2: more cells than the header has columns",
        ),
        (b"\xff\xfe\x00p\x00l", "p.csv", "p.csv: not UTF-8 text"),
        (
            f"{HEADER}\n".encode().replace(b"region", b"reg\x00ion"),
            "p.csv",
            "p.csv: not a text file",
        ),
        (f"{HEADER}\n".encode(), "p.csv", "p.csv: no place rows"),
        (b"PK\x03\x04 not really a workbook", "p.xlsx", "p.xlsx: not an XLSX workbook"),
        (b"{}", "p.json", "p.json: unknown file type '.json'"),
        (b"x" * (places.MAX_BYTES + 1), "p.csv", "p.csv: larger than 20 MB"),
    ],
)
def test_hostile_files_are_refused_with_one_line(data: bytes, name: str, expected: str) -> None:
    found = problems(data, name)
    assert any(p.startswith(expected) for p in found), found


def test_anywhere_setting_skips_the_outline() -> None:
    text = f"{HEADER}\nc-1,container,X,Almaty,41.31,69.24,1100,packaging_glass,{BIN_A},\n"
    rows = places.read_bytes("p.csv", text.encode(), within=places.outline_for("anywhere"))
    assert rows[0].latitude == 41.31


def test_store_then_edit_is_audited_and_scoped(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "places.csv"
    path.write_text(GOOD, encoding="utf-8")
    rows, sha = places.read_file(path, within=kazakhstan(), categories=CATEGORIES)
    with sessions.begin() as s:
        result = places.store(s, rows, by="ops.anna", source=str(path), sha256=sha)
        assert (result.created, result.updated) == (3, 0)
    with sessions.begin() as s:
        assert places.store(s, rows, by="ops.anna", source=str(path)).unchanged == 3
    with sessions.begin() as s:
        places.update_place(
            s,
            "almaty-c01",
            {"latitude": "43.30", "capacity_l": "770"},
            by="ops.anna",
            within=kazakhstan(),
            categories=CATEGORIES,
        )
    with sessions() as s:
        place = s.get(Place, "almaty-c01")
        assert place is not None
        assert place.capacity_l == 770
        assert place.latitude == 43.30
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "place.updated")).one()
        assert entry.actor == "ops.anna"
        change = json.loads(entry.data)
        assert change["before"] == {"capacity_l": 1100, "latitude": 43.2601}
        assert change["after"] == {"capacity_l": 770, "latitude": 43.3}
        imported = s.scalars(select(AuditEntry).where(AuditEntry.action == "places.imported")).all()
        assert sha in imported[0].data
    with sessions.begin() as s, pytest.raises(places.PlaceProblems, match="outside Kazakhstan"):
        places.update_place(
            s, "almaty-c01", {"longitude": "37.6", "latitude": "55.7"}, by="x", within=kazakhstan()
        )
    with sessions.begin() as s, pytest.raises(places.PlaceProblems, match="not editable"):
        places.update_place(s, "almaty-c01", {"kind": "reception_point"}, by="x", within=None)
    with sessions() as s:
        mine = places.list_places(s, Scope(BIN_A))
        assert {v.place.place_id for v in mine} == {"almaty-c01", "almaty-rp-01"}
        assert places.visible_place(s, Scope(BIN_A), "almaty-rp-01").place_id == "almaty-rp-01"
        with pytest.raises(NotFound):
            places.visible_place(s, Scope(BIN_A), "aktobe-c01")
        with pytest.raises(NotFound):
            places.list_places(s, Scope(BIN_A), contractor=BIN_B)
