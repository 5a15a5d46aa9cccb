"""Disputes over HTTP: both sides see the comment and the decision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from tests.server.api.conftest import TestClient
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_open_decide_list(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient
) -> None:
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "100")])
    r = client.post(
        "/api/v1/disputes",
        json={"contractor_bin": BIN, "ticket": f"{dev.device_id}:1", "comment": "it was 110 kg",
              "actor": "Eco: driver"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    r = client.post(
        f"/api/v1/disputes/{did}/decide",
        json={"decision": "reject", "reason": "frames show 100.0 kg", "actor": "A. Operator"},
    )
    assert r.json()["status"] == "rejected"
    (seen,) = client.get("/api/v1/disputes", params={"contractor_bin": BIN}).json()
    assert (seen["comment"], seen["decision_reason"]) == ("it was 110 kg", "frames show 100.0 kg")
    bad = client.post(
        "/api/v1/disputes",
        json={"contractor_bin": BIN, "ticket": "rp-none:1", "comment": "?", "actor": "x"},
    )
    assert bad.status_code == 422
    assert "does not exist" in bad.json()["detail"]
