"""Disputes over HTTP: both sides see the comment and the decision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Role
from tests.server.api.conftest import ClientAs, TestClient
from tests.support.accounts import BIN_B
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_open_decide_list(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    import_contracts(sessions, contract())
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
    assert other.get("/api/v1/disputes", params={"contractor_bin": BIN}).status_code == 404
    r = client.post(
        f"/api/v1/disputes/{did}/decide",
        json={"decision": "reject", "reason": "frames show 100.0 kg"},
    )
    assert (r.json()["status"], r.json()["decided_by"]) == ("rejected", "ops")
    (seen,) = contractor.get("/api/v1/disputes").json()
    assert (seen["comment"], seen["decision_reason"]) == ("it was 110 kg", "frames show 100.0 kg")
    assert seen["opened_by"] == "eco"
    bad = contractor.post("/api/v1/disputes", json={"ticket": "rp-none:1", "comment": "?"})
    assert (bad.status_code, bad.json()) == (404, {"detail": "ticket rp-none:1 not found"})


def test_staff_never_open_a_dispute_in_a_contractors_name(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    auditor = client_as("aud", Role.AUDITOR)
    body = {"contractor_bin": BIN, "ticket": f"{dev.device_id}:1", "comment": "in their name"}
    for staff in (client, auditor):
        refused = staff.post("/api/v1/disputes", json=body)
        assert refused.status_code == 403, refused.text
        assert (
            staff.post("/api/v1/disputes", json=body | {"contractor_bin": None}).status_code == 403
        )
    # A contractor names no other BIN either; its own (or none) is fine.
    contractor = client_as("eco", Role.CONTRACTOR, BIN)
    assert (
        contractor.post("/api/v1/disputes", json=body | {"contractor_bin": BIN_B}).status_code
        == 403
    )
    assert contractor.get("/api/v1/disputes").json() == []
    assert contractor.post("/api/v1/disputes", json=body).status_code == 201
    del body["contractor_bin"]
    assert contractor.post("/api/v1/disputes", json=body).status_code == 201
    assert [d["opened_by"] for d in client.get("/api/v1/disputes").json()] == ["eco", "eco"]


def test_another_contractors_ticket_is_not_found_like_a_missing_one(
    tmp_path: Path, sessions: sessionmaker[Session], client_as: ClientAs
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    rival = client_as("rival", Role.CONTRACTOR, BIN_B)
    existing = rival.post("/api/v1/disputes", json={"ticket": f"{dev.device_id}:1", "comment": "x"})
    missing = rival.post("/api/v1/disputes", json={"ticket": f"{dev.device_id}:2", "comment": "x"})
    assert existing.status_code == missing.status_code == 404
    assert existing.json()["detail"].replace(":1 ", ":2 ") == missing.json()["detail"]
    assert client_as("eco", Role.CONTRACTOR, BIN).get("/api/v1/disputes").json() == []
