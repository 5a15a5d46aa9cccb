"""Statements over HTTP: preview, compute, approve, pay, verify."""

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


def test_statement_workflow(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1500"), weigh(dev, "0.1")])
    # A preview uses the holds recorded so far: the scan has not run yet.
    preview = client.get(f"/api/v1/contractors/{BIN}/statements/2026-03").json()
    assert preview["total_kzt"] == "79628.31"
    r = client.post("/api/v1/statements/compute", json={"periods": ["2026-03"]})
    assert r.status_code == 200, r.text
    (draft,) = r.json()["drafts"]
    assert (draft["status"], draft["total_kzt"]) == ("draft", "79623.00")
    assert r.json()["new_holds"] == 1  # 0.1 kg of tyres
    preview = client.get(f"/api/v1/contractors/{BIN}/statements/2026-03").json()
    assert preview["total_kzt"] == "79623.00"
    one = client.get(f"/api/v1/statements/{draft['id']}").json()
    assert one["body"]["held"][0]["reasons"] == [{"reason": "implausible_weight", "status": "open"}]
    assert one["sha256"] == draft["sha256"]
    r = client.post(f"/api/v1/statements/{draft['id']}/pay", json={"reference": "1"})
    assert r.status_code == 409
    assert "only an approved" in r.json()["detail"]
    r = client.post(f"/api/v1/statements/{draft['id']}/approve")
    assert r.json()["status"] == "approved"
    r = client.post(f"/api/v1/statements/{draft['id']}/pay", json={"reference": "PP-7"})
    assert (r.json()["status"], r.json()["payment_ref"]) == ("paid", "PP-7")
    listed = client.get("/api/v1/statements", params={"period": "2026-03"}).json()
    assert [s["status"] for s in listed] == ["paid"]
    report = client.get("/api/v1/statements/verify").json()
    assert report["ok"], report["problems"]
    assert report["tickets_checked"] == 2
    assert client.get("/api/v1/statements/2026-13").status_code == 422
    assert client.post("/api/v1/statements/compute", json={"periods": []}).status_code == 422
    assert client.get("/api/v1/statements/999").status_code == 404


def test_contractors_see_only_their_statements_and_cannot_run_the_workflow(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1500")])
    (draft,) = client.post("/api/v1/statements/compute", json={"periods": ["2026-03"]}).json()[
        "drafts"
    ]
    owner = client_as("eco", Role.CONTRACTOR, BIN)
    rival = client_as("rival", Role.CONTRACTOR, BIN_B)
    auditor = client_as("audit", Role.AUDITOR)
    assert [s["id"] for s in owner.get("/api/v1/statements").json()] == [draft["id"]]
    assert owner.get(f"/api/v1/statements/{draft['id']}").status_code == 200
    assert rival.get("/api/v1/statements").json() == []
    assert rival.get(f"/api/v1/statements/{draft['id']}").status_code == 404
    assert rival.get(f"/api/v1/contractors/{BIN}/statements/2026-03").status_code == 404
    for who in (owner, auditor):
        assert who.post(f"/api/v1/statements/{draft['id']}/approve").status_code == 403
        assert (
            who.post("/api/v1/statements/compute", json={"periods": ["2026-03"]}).status_code == 403
        )
    assert auditor.get("/api/v1/statements/verify").json()["ok"]
    assert owner.get("/api/v1/statements/verify").status_code == 403
