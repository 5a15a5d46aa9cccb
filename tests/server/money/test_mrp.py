"""The MRP table: operator data with versions, checked row by row."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.money import mrp
from server.money.contracts import ImportProblems

DATA = Path(__file__).parents[3] / "docs" / "data" / "mrp.csv"


def test_the_shipped_table_and_lookup_by_month() -> None:
    table = mrp.read_csv(DATA)
    assert table.value_for(date(2020, 6, 1)) == Decimal(2778)
    assert table.value_for(date(2024, 12, 31)) == Decimal(3692)
    assert table.value_for(date(2025, 3, 1)) == Decimal(3932)
    assert table.value_for(date(2019, 12, 1)) is None
    # 2021-2023 are not in this file: never last year's value by default.
    assert table.value_for(date(2022, 6, 1)) is None
    assert any("check" in r.note.lower() for r in table.rows if r.valid_from.year == 2026)


def test_a_mid_year_change_applies_from_its_month(tmp_path: Path) -> None:
    path = tmp_path / "mrp.csv"
    path.write_text("valid_from,mrp_kzt,note\n2022,3063,\n2022-04,3180,amended budget\n")
    table = mrp.read_csv(path)
    assert table.value_for(date(2022, 3, 31)) == Decimal(3063)
    assert table.value_for(date(2022, 4, 1)) == Decimal(3180)


def test_every_bad_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mrp.csv"
    path.write_text(
        "valid_from,mrp_kzt,note\n2024,3692,\n2024,3700,\n2025-13,1,\n2026,4325.123,\n2027,0,\n"
    )
    with pytest.raises(ImportProblems) as err:
        mrp.read_csv(path)
    assert err.value.problems == [
        f"{path}:3:valid_from: 2024-01 repeats row 2",
        f"{path}:4:valid_from: month 13 is not 1..12",
        f"{path}:5:mrp_kzt: '4325.123' is not tenge with at most 2 decimals",
        f"{path}:6:mrp_kzt: must be positive",
    ]
    path.write_text("year,value\n2024,1\n")
    with pytest.raises(ImportProblems, match="valid_from: required column missing"):
        mrp.read_csv(path)


def test_loads_are_versioned_and_audited(sessions: sessionmaker[Session]) -> None:
    table = mrp.read_csv(DATA)
    with sessions.begin() as session:
        first = mrp.store(session, table, source=str(DATA), actor="ops")
        again = mrp.store(session, table, source=str(DATA), actor="ops")
        changed = mrp.store(
            session,
            mrp.MrpTable((*table.rows[:-1], mrp.MrpRow(date(2026, 1, 1), Decimal(4400)))),
            source="fix",
            actor="ops",
        )
    assert (first.version, first.created) == (1, True)
    assert (again.version, again.created) == (1, False)
    assert changed.version == 2
    with sessions() as session:
        older = mrp.load(session, 1)
        latest = mrp.load(session)
    assert older is not None
    assert latest is not None
    assert older.value_for(date(2026, 5, 1)) != latest.value_for(date(2026, 5, 1))
    assert latest.version == 2
