"""Contract import: all or nothing, every problem named, amendments as versions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.identifiers import bin_problem, make_bin
from server.ledger.accounting import AuditEntry
from server.ledger.models import Contract
from server.money.contracts import ImportProblems, latest_versions, read_csv, read_file, store

HEADER = (
    "contract_id,tender_id,lot,contractor_bin,contractor_name,category,stage,regions,"
    "site_ids,period_start,period_end,cap_t,rate,rate_unit,budget_cap_kzt\n"
)
GOOD = (
    "C-1,T-1,1,120440012349,Eco Tyre LLP,tyres,collection,Almaty;Aktobe,,"
    "2026-01-01,2026-12-31,35000,53082.00,KZT/t,\n"
)


def write(tmp_path: Path, body: str, name: str = "lots.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_bin_check_digit() -> None:
    assert bin_problem("120440012349") is None
    assert "check digit" in (bin_problem("120440012348") or "")
    assert "12 digits" in (bin_problem("12044001234") or "")
    assert make_bin("12044001234") == "120440012349"


def test_imports_and_versions(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        result = store(session, read_csv(write(tmp_path, GOOD)))
    assert (result.created, result.amended, result.unchanged) == (1, 0, 0)
    with sessions.begin() as session:
        result = store(session, read_csv(write(tmp_path, GOOD)))
    assert result.unchanged == 1
    amended = GOOD.replace(",35000,", ",36000,")
    with sessions.begin() as session:
        result = store(session, read_csv(write(tmp_path, amended)))
    assert result.amended == 1
    with sessions() as session:
        versions = session.scalars(select(Contract.version).order_by(Contract.version)).all()
        assert versions == [1, 2]
        (latest,) = latest_versions(session)
        assert latest.cap_t == Decimal(36000)
        assert latest.regions == "Aktobe;Almaty"


def test_every_problem_is_reported_and_nothing_imported(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    bad = (
        GOOD
        + "C-2,T-1,2,120440012348,X,tyres,collection,Almaty,,2026-01-01,2026-12-31,1,1,KZT/t,\n"
        + "C-3,T-1,3,120440012349,X,tyres,recycling,Atlantis,,2026-13-01,2026-12-31,1.5e3,-1,,\n"
        + "C-1,T-1,1,120440012349,X,tyres,collection,Almaty,,2026-01-01,2026-12-31,1,1,,\n"
    )
    path = write(tmp_path, bad)
    with pytest.raises(ImportProblems) as err:
        read_csv(path)
    problems = "\n".join(err.value.problems)
    assert (
        f"{path}:3:contractor_bin: 120440012348 fails the BIN check digit: the last digit"
        " should be 9" in problems
    )
    assert f"{path}:4:stage: 'recycling' is not one of" in problems
    assert f"{path}:4:regions: unknown region 'Atlantis'" in problems
    assert f"{path}:4:period_start: '2026-13-01' is not a date" in problems
    assert f"{path}:4:cap_t:" in problems
    assert f"{path}:4:rate:" in problems
    assert f"{path}:5:contract_id: C-1 repeats {path}:2" in problems
    with sessions() as session:
        assert session.scalars(select(Contract)).all() == []


def test_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("contract_id,colour\nC-1,red\n")
    with pytest.raises(ImportProblems) as err:
        read_csv(path)
    assert f"{path}:1:colour: unknown column" in err.value.problems
    assert f"{path}:1:rate: required column missing" in err.value.problems


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ImportProblems, match="not a text file"):
        read_csv(binary)
    with pytest.raises(ImportProblems, match="cannot read"):
        read_csv(tmp_path / "missing.csv")


def test_mrp_rates_and_budget_tiyn(tmp_path: Path) -> None:
    body = (
        "C-M,T-1,1,120440012349,Eco,tyres,collection,Almaty,,2026-01-01,2026-12-31,100,"
        "13.50,MRP/t,1000000.00\n"
        "C-B,T-1,2,120440012349,Eco,tyres,collection,Almaty,,2026-01-01,2026-12-31,100,"
        "1,KZT/t,10.005\n"
        "C-U,T-1,3,120440012349,Eco,tyres,collection,Almaty,,2026-01-01,2026-12-31,100,"
        "1,USD/t,\n"
    )
    with pytest.raises(ImportProblems) as err:
        read_csv(write(tmp_path, body))
    assert err.value.problems == [
        f"{tmp_path / 'lots.csv'}:3:budget_cap_kzt: tenge have at most 2 decimals (tiyn)",
        f"{tmp_path / 'lots.csv'}:4:rate_unit: 'USD/t' is not one of KZT/t, MRP/t",
    ]
    (row,) = read_csv(write(tmp_path, body.splitlines(keepends=True)[0]))
    assert (row.rate, row.rate_unit) == (Decimal("13.50"), "MRP/t")


JSON_LOTS = [
    {
        "contract_id": "C-J1",
        "tender_id": "T-2026",
        "lot": 1,
        "contractor_bin": "120440012349",
        "contractor_name": "Eco Tyre LLP",
        "category": "tyres",
        "stage": "collection",
        "regions": ["Almaty", "Aktobe"],
        "period_start": "2026-01-01",
        "period_end": "2026-12-31",
        "cap_t": 35000,
        "rate": 13.5,
        "rate_unit": "MRP/t",
    }
]


def test_json_lots(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    import json

    path = tmp_path / "lots.json"
    path.write_text(json.dumps({"contracts": JSON_LOTS}))
    (row,) = read_file(path)
    assert (row.lot, row.regions, row.cap_t, row.rate) == (
        "1",
        ("Aktobe", "Almaty"),
        Decimal(35000),
        Decimal("13.5"),
    )
    bad = dict(JSON_LOTS[0], contractor_bin="120440012348", colour="red", rate=1e-9)
    path.write_text(json.dumps([JSON_LOTS[0], bad, "not an object"]))
    with pytest.raises(ImportProblems) as err:
        read_file(path)
    assert err.value.problems == [
        f"{path}:2:colour: unknown field",
        f"{path}:3: expected an object, got str",
    ]
    del_colour = [dict(JSON_LOTS[0]), {k: v for k, v in bad.items() if k != "colour"}]
    path.write_text(json.dumps(del_colour))
    with pytest.raises(ImportProblems) as err:
        read_file(path)
    assert (
        f"{path}:2:contractor_bin: 120440012348 fails the BIN check digit: the last digit"
        " should be 9" in err.value.problems
    )
    assert any(p.startswith(f"{path}:2:rate:") for p in err.value.problems)
    path.write_text("{broken")
    with pytest.raises(ImportProblems, match="not valid JSON"):
        read_file(path)


def test_xlsx_lots(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    columns = HEADER.strip().split(",")
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(columns)
    good = [
        "C-X1",
        "T-1",
        1,
        "120440012349",
        "Eco Tyre LLP",
        "tyres",
        "collection",
        "Almaty",
        None,
        datetime(2026, 1, 1),
        datetime(2026, 12, 31),
        35000,
        53082.5,
        "KZT/t",
        None,
    ]
    ws.append(good)
    ws.append([None] * len(columns))  # trailing blank rows are ignored
    path = tmp_path / "lots.xlsx"
    wb.save(path)
    (row,) = read_file(path)
    assert (row.period_start.isoformat(), row.cap_t, row.rate) == (
        "2026-01-01",
        Decimal(35000),
        Decimal("53082.5"),
    )
    # A numeric cell with more decimals than a rate may have:
    # reported, never rounded.
    ws.append([*good[:12], 53082.123456789, *good[13:]])
    ws["A4"] = "C-X2"
    ws["B3"] = "T-1"
    wb.save(path)
    with pytest.raises(ImportProblems) as err:
        read_file(path)
    problems = "\n".join(err.value.problems)
    assert f"{path}:3:contract_id: missing" in problems
    assert f"{path}:4:rate: '53082.123456789' is not a non-negative decimal" in problems
    with sessions.begin() as session:
        result = store(session, [row], actor="ops", source="lots.xlsx")
    assert result.created == 1
    with sessions() as session:
        (entry,) = session.scalars(select(AuditEntry)).all()
    assert (entry.action, entry.actor, entry.subject) == ("contracts.imported", "ops", "lots.xlsx")
    assert '"C-X1@v1"' in entry.data
    (tmp_path / "lots.ods").write_text("x")
    with pytest.raises(ImportProblems, match=r"unknown file type '\.ods'"):
        read_file(tmp_path / "lots.ods")
    (tmp_path / "junk.xlsx").write_text("not a zip")
    with pytest.raises(ImportProblems, match="not an XLSX workbook"):
        read_file(tmp_path / "junk.xlsx")
