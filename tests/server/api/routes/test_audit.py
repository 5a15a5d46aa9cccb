"""The audit log over HTTP: the head an auditor keeps, and a verification."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.server.api.conftest import TestClient
from tests.support.tamper import bypassing_append_only
from tests.support.tickets import contract, import_contracts


def test_head_and_verify(sessions: sessionmaker[Session], client: TestClient) -> None:
    import_contracts(sessions, contract())
    head = client.get("/api/v1/audit/head").json()
    assert head["seq"] == 1
    ok = client.get("/api/v1/audit/verify", params=head).json()
    assert ok["ok"]
    assert ok["entries"] == 1
    with sessions.begin() as session, bypassing_append_only(session):
        session.execute(text("UPDATE audit_log SET actor = 'someone else'"))
    broken = client.get("/api/v1/audit/verify").json()
    assert not broken["ok"]
    assert broken["problems"] == ["entry 1: content does not match its hash (edited)"]
