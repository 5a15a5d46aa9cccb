"""Statements over HTTP: preview, compute, approve, pay, verify."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Role
from server.people.permissions import Permission
from tests.server.api.conftest import ClientAs, TestClient
from tests.support.accounts import BIN_B
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
COMPUTE, APPROVE, PAY = Permission.COMPUTE, Permission.APPROVE, Permission.PAY


def test_statement_workflow(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1500"), weigh(dev, "0.1")])
    # Three accounts: anna computes (and may approve), bob approves (and may pay),
    # carol pays. ``client`` is an operator without any of the permissions.
    anna = client_as("ops.anna", Role.OPERATOR, permissions=[COMPUTE, APPROVE])
    bob = client_as("ops.bob", Role.OPERATOR, permissions=[APPROVE, PAY])
    carol = client_as("ops.carol", Role.OPERATOR, permissions=[PAY])
    # A preview uses the holds recorded so far: the scan has not run yet.
    preview = client.get(f"/api/v1/contractors/{BIN}/statements/2026-03").json()
    assert preview["total_kzt"] == "79628.31"
    r = client.post("/api/v1/statements/compute", json={"periods": ["2026-03"]})
    assert r.status_code == 403
    assert r.json()["detail"] == "ops does not hold the permission statements.compute"
    r = anna.post("/api/v1/statements/compute", json={"periods": ["2026-03"]})
    assert r.status_code == 200, r.text
    (draft,) = r.json()["drafts"]
    assert (draft["status"], draft["total_kzt"]) == ("draft", "79623.00")
    assert draft["computed_by"] == "ops.anna"
    assert r.json()["new_holds"] == 1  # 0.1 kg of tyres
    preview = client.get(f"/api/v1/contractors/{BIN}/statements/2026-03").json()
    assert preview["total_kzt"] == "79623.00"
    one = client.get(f"/api/v1/statements/{draft['id']}").json()
    assert one["body"]["held"][0]["reasons"] == [{"reason": "implausible_weight", "status": "open"}]
    assert one["sha256"] == draft["sha256"]
    approve_url = f"/api/v1/statements/{draft['id']}/approve"
    pay_url = f"/api/v1/statements/{draft['id']}/pay"
    total = {"expected_total_kzt": "79623.00"}
    r = carol.post(pay_url, json={"reference": "1"} | total)
    assert r.status_code == 409
    assert "only an approved" in r.json()["detail"]
    # The approval names the total; without it, or with a number, the request is malformed.
    assert bob.post(approve_url).status_code == 422
    assert bob.post(approve_url, json={"expected_total_kzt": 79623.0}).status_code == 422
    r = anna.post(approve_url, json=total)
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "approval must come from another account than the one that computed"
        f" statement {draft['id']} (ops.anna)"
    )
    r = bob.post(approve_url, json={"expected_total_kzt": "79628.31"})  # a stale view
    assert r.status_code == 409
    assert "totals 79623.00 KZT, not 79628.31" in r.json()["detail"]
    r = bob.post(approve_url, json=total)
    assert (r.json()["status"], r.json()["approved_by"]) == ("approved", "ops.bob")
    r = bob.post(pay_url, json={"reference": "PP-7"} | total)
    assert r.status_code == 403
    assert "another account than the one that approved" in r.json()["detail"]
    r = carol.post(pay_url, json={"reference": "PP-7", "expected_total_kzt": "79623.01"})
    assert r.status_code == 409
    assert carol.post(pay_url, json={"reference": "PP-7"}).status_code == 422
    r = carol.post(pay_url, json={"reference": "PP-7"} | total)
    assert (r.json()["status"], r.json()["payment_ref"]) == ("paid", "PP-7")
    assert r.json()["paid_by"] == "ops.carol"
    listed = client.get("/api/v1/statements", params={"period": "2026-03"}).json()
    assert [s["status"] for s in listed] == ["paid"]
    # The audit log says who took each step and with which credential.
    steps = client.get(
        "/api/v1/audit/entries", params={"subject": f"statement {draft['id']}"}
    ).json()
    assert [(e["action"], e["actor"]) for e in steps] == [
        ("statement.approved", "ops.bob"),
        ("statement.paid", "ops.carol"),
    ]
    assert all(e["credential"].startswith("token #") for e in steps)
    (computed,) = client.get(
        "/api/v1/audit/entries", params={"action": "statements.computed"}
    ).json()
    assert computed["actor"] == "ops.anna"
    assert computed["credential"].startswith("token #")
    report = client.get("/api/v1/statements/verify").json()
    assert report["ok"], report["problems"]
    assert report["tickets_checked"] == 2
    assert client.get("/api/v1/statements/2026-13").status_code == 422
    assert anna.post("/api/v1/statements/compute", json={"periods": []}).status_code == 422
    assert client.get("/api/v1/statements/999").status_code == 404


def test_contractors_see_only_their_statements_and_cannot_run_the_workflow(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1500")])
    computer = client_as("ops.anna", Role.OPERATOR, permissions=[COMPUTE])
    (draft,) = computer.post("/api/v1/statements/compute", json={"periods": ["2026-03"]}).json()[
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
    total = {"expected_total_kzt": draft["total_kzt"]}
    for who in (owner, auditor):
        assert who.post(f"/api/v1/statements/{draft['id']}/approve", json=total).status_code == 403
        assert (
            who.post("/api/v1/statements/compute", json={"periods": ["2026-03"]}).status_code == 403
        )
    assert auditor.get("/api/v1/statements/verify").json()["ok"]
    assert owner.get("/api/v1/statements/verify").status_code == 403
