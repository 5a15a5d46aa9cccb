"""Contract import: all or nothing, every problem named, amendments as versions."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.contracts import ImportProblems, latest_versions, read_csv, store
from server.identifiers import bin_problem, make_bin
from server.ledger.models import Contract

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
    assert f"{path}:3:contractor_bin: 120440012348 fails the BIN check digit" in problems
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
    with pytest.raises(ImportProblems, match="not UTF-8"):
        read_csv(binary)
    with pytest.raises(ImportProblems, match="cannot read"):
        read_csv(tmp_path / "missing.csv")
