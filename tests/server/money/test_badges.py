"""The badge map: checked row by row, versioned, dated."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from server.money import badges
from server.money.contracts import ImportProblems

BIN = "120440012349"
OTHER = "090540023459"


def test_lookup_by_date_and_stages(tmp_path: Path) -> None:
    path = tmp_path / "badges.csv"
    path.write_text(
        "badge,contractor_bin,stages,valid_from,valid_to\n"
        f"B-1,{BIN},,,2026-06-30\n"
        f"B-1,{OTHER},collection;transport,2026-07-01,\n"
    )
    m = badges.read_csv(path)
    first = m.lookup("B-1", date(2026, 6, 30))
    later = m.lookup("B-1", date(2026, 7, 1))
    assert first is not None
    assert later is not None
    assert (first.contractor_bin, first.stages) == (BIN, ("collection",))
    assert (later.contractor_bin, later.stages) == (OTHER, ("collection", "transport"))
    assert m.lookup("B-2", date(2026, 7, 1)) is None
    assert m.cuts == (date(2026, 7, 1),)


def test_every_bad_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "badges.csv"
    path.write_text(
        "badge,contractor_bin,stages,valid_from\n"
        "B-1,120440012348,,\n"
        f",{BIN},recycling,2026-02-30\n"
        f"B-2,{BIN},,\n"
        f"B-2,{OTHER},,2026-01-01\n"
    )
    with pytest.raises(ImportProblems) as err:
        badges.read_csv(path)
    assert err.value.problems == [
        f"{path}:2:contractor_bin: 120440012348 fails the BIN check digit: the last digit"
        " should be 9",
        f"{path}:3:badge: missing",
        f"{path}:3:stages: 'recycling' is not one of collection, transport, processing,"
        " neutralisation",
        f"{path}:3:valid_from: '2026-02-30' is not a date like 2026-01-31",
        f"{path}:badge: B-2 has overlapping validity periods",
    ]


def test_versions(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    m = badges.BadgeMap((badges.BadgeEntry("B-1", BIN),))
    with sessions.begin() as session:
        assert badges.store(session, m, source="a", actor="ops").version == 1
        assert not badges.store(session, m, source="a", actor="ops").created
    with sessions() as session:
        assert badges.load(session).entries == m.entries
        assert badges.load(session, 1).version == 1
