"""Permissions over HTTP: an account administrator grants and revokes them."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Role
from server.people.permissions import Permission
from tests.server.api.conftest import ClientAs, TestClient
from tests.support.accounts import BIN_A


def test_an_administrator_grants_and_revokes_permissions(
    sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    admin = client_as("admin", Role.OPERATOR, permissions=[Permission.ADMIN])
    client_as("audit1", Role.AUDITOR)
    eco = client_as("eco", Role.CONTRACTOR, BIN_A)
    url = "/api/v1/accounts/ops/permissions"
    r = client.post(url, json={"permission": "statements.compute"})  # not an administrator
    assert r.status_code == 403
    assert r.json()["detail"] == "ops does not hold the permission accounts.admin"
    assert eco.post(url, json={"permission": "statements.compute"}).status_code == 403
    r = admin.post(url, json={"permission": "statements.compute"})
    assert r.json() == {"username": "ops", "permissions": ["statements.compute"]}
    assert client.get("/api/v1/me").json()["permissions"] == ["statements.compute"]
    r = admin.post("/api/v1/accounts/audit1/permissions", json={"permission": "statements.pay"})
    assert r.status_code == 409
    assert "only operators" in r.json()["detail"]
    # An unknown permission is malformed input; an unknown account is not found.
    r = admin.post(url, json={"permission": "statements.everything"})
    assert r.status_code == 422
    assert (
        admin.post(
            "/api/v1/accounts/nobody/permissions", json={"permission": "statements.pay"}
        ).status_code
        == 404
    )
    assert admin.delete(f"{url}/statements.everything").status_code == 422
    listed = {a["username"]: a for a in admin.get("/api/v1/accounts").json()}
    assert listed["ops"]["permissions"] == ["statements.compute"]
    assert listed["admin"]["permissions"] == ["accounts.admin"]
    assert eco.get("/api/v1/accounts").status_code == 403
    r = admin.delete(f"{url}/statements.compute")
    assert r.json() == {"username": "ops", "permissions": []}
    (granted, revoked) = admin.get("/api/v1/audit/entries", params={"subject": "user ops"}).json()
    assert (granted["action"], granted["actor"]) == ("account.permission_granted", "admin")
    assert revoked["action"] == "account.permission_revoked"
    assert revoked["credential"].startswith("token #")
    assert eco.get("/api/v1/audit/entries").status_code == 403
