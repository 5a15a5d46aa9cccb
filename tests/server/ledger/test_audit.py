"""The hash-chained audit log: an edited, removed or reordered entry is found."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from server import cli
from server.ledger import audit
from tests.support.tamper import bypassing_append_only

T0 = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


def fill(sessions: sessionmaker[Session], n: int = 5) -> audit.Head:
    with sessions.begin() as session:
        for i in range(n):
            audit.append(
                session,
                actor="ops.almaty",
                action="test.event",
                subject=f"thing {i}",
                data={"i": i, "amount_kzt": "1234.50", "note": "Қазақстан"},
                now=T0 + timedelta(seconds=i),
            )
    with sessions() as session:
        return audit.head(session)


def test_a_clean_chain_verifies_and_exports_its_head(sessions: sessionmaker[Session]) -> None:
    head = fill(sessions)
    assert head.seq == 5
    with sessions() as session:
        report = audit.verify(session, head)
    assert report.ok, report.problems
    assert (report.entries, report.head) == (5, head)


TAMPER = {
    "edited data": (
        "UPDATE audit_log SET data = replace(data, '1234.50', '1234.60') WHERE seq = 3",
        "entry 3: content does not match its hash (edited)",
    ),
    "edited actor": (
        "UPDATE audit_log SET actor = 'B. Operator' WHERE seq = 2",
        "entry 2: content does not match its hash",
    ),
    "removed entry": (
        "DELETE FROM audit_log WHERE seq = 3",
        "entry 4: expected seq 3",
    ),
    "reordered entries": (
        "UPDATE audit_log SET seq = CASE seq WHEN 2 THEN 3 ELSE 2 END WHERE seq IN (2, 3)",
        "prev_hash does not match the hash of the entry before it",
    ),
    "cut off the end": (
        "DELETE FROM audit_log WHERE seq = 5",
        "the exported head (entry 5) is no longer in the log",
    ),
    "head row rewritten": (
        "UPDATE audit_head SET hash = 'ff' || substr(hash, 3)",
        "audit_head says entry 5",
    ),
}


def test_tampering_is_found(sessions: sessionmaker[Session]) -> None:
    head = fill(sessions)
    for case, (sql, expected) in TAMPER.items():
        with sessions() as session:
            session.begin()
            with bypassing_append_only(session):
                if case == "reordered entries":
                    # Swap two entries' positions: park one at seq 0 first (primary key).
                    session.execute(text("UPDATE audit_log SET seq = 0 WHERE seq = 2"))
                    session.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
                    session.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = 0"))
                else:
                    session.execute(text(sql))
            report = audit.verify(session, head)
            session.rollback()  # the next case starts from the intact log
        assert not report.ok, case
        assert any(expected in p for p in report.problems), (case, report.problems)
    with sessions() as session:
        assert audit.verify(session, head).ok


def test_cli_exports_the_head_and_verifies_against_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    from server.ledger.db import make_engine, migrate, session_factory

    engine = make_engine(url)
    migrate(engine)
    fill(session_factory(engine), 3)
    head_file = tmp_path / "head.json"
    assert cli.main(["--database-url", url, "audit", "head", "--out", str(head_file)]) == 0
    kept = json.loads(head_file.read_text())
    assert kept["seq"] == 3
    assert cli.main(["--database-url", url, "audit", "verify", "--head", str(head_file)]) == 0
    assert "3 entries" in capsys.readouterr().out
    with session_factory(engine).begin() as session, bypassing_append_only(session):
        session.execute(text("DELETE FROM audit_log WHERE seq = 3"))
        session.execute(text("UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_log"
                             " WHERE seq = 2)"))  # fmt: skip
    assert cli.main(["--database-url", url, "audit", "verify", "--head", str(head_file)]) == 1
    out = capsys.readouterr().out
    assert "BROKEN the exported head (entry 3) is no longer in the log" in out
    assert cli.main(["--database-url", url, "audit", "verify"]) == 0  # without the kept head
    engine.dispose()


def test_the_database_refuses_edits_of_the_log(sessions: sessionmaker[Session]) -> None:
    fill(sessions, 2)
    for sql in ("UPDATE audit_log SET actor = 'someone' WHERE seq = 1", "DELETE FROM audit_log"):
        with (
            pytest.raises(DBAPIError, match="audit_log is append-only"),
            sessions.begin() as session,
        ):
            session.execute(text(sql))
    with sessions() as session:
        assert audit.verify(session, audit.head(session)).ok
