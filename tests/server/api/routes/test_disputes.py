"""Disputes over HTTP: both sides see the comment and the decision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Role
from tests.server.api.conftest import ClientAs, TestClient
from tests.support.accounts import BIN_B
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_open_decide_list(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    contractor = client_as("eco", Role.CONTRACTOR, BIN)
    other = client_as("rival", Role.CONTRACTOR, BIN_B)
    r = contractor.post(
        "/api/v1/disputes",
        json={"contractor_bin": BIN, "ticket": f"{dev.device_id}:1", "comment": "it was 110 kg"},
    )
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    # Only an operator decides; another contractor neither sees nor opens it.
    denied = contractor.post(
        f"/api/v1/disputes/{did}/decide", json={"decision": "accept", "reason": "mine"}
    )
    assert denied.status_code == 403
    assert other.get("/api/v1/disputes").json() == []
    assert other.get("/api/v1/disputes", params={"contractor_bin": BIN}).status_code == 403
    r = client.post(
        f"/api/v1/disputes/{did}/decide",
        json={"decision": "reject", "reason": "frames show 100.0 kg"},
    )
    assert (r.json()["status"], r.json()["decided_by"]) == ("rejected", "ops")
    (seen,) = contractor.get("/api/v1/disputes").json()
    assert (seen["comment"], seen["decision_reason"]) == ("it was 110 kg", "frames show 100.0 kg")
    assert seen["opened_by"] == "eco"
    bad = client.post(
        "/api/v1/disputes",
        json={"contractor_bin": BIN, "ticket": "rp-none:1", "comment": "?"},
    )
    assert bad.status_code == 422
    assert "does not exist" in bad.json()["detail"]
