"""Holds over HTTP: list with reasons, resolve with who and why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.fleet.registry import upsert_site
from server.money import holds
from tests.server.api.conftest import TestClient
from tests.support.builders import fake_device, register
from tests.support.tickets import ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def test_list_and_resolve(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient
) -> None:
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "0.1"), weigh(dev, "0.2")])
    with sessions.begin() as session:
        holds.scan(session)
    listed = client.get("/api/v1/holds", params={"status": "open"}).json()
    assert [(h["ticket"]["seq"], h["reason"]) for h in listed] == [
        (1, "implausible_weight"),
        (2, "implausible_weight"),
    ]
    assert listed[0]["reason_text"] == "weight outside the category's plausible bounds"
    first = listed[0]["hold_id"]
    body = {"decision": "release", "reason": "lamp box, checked"}
    assert client.post(f"/api/v1/holds/{first}/resolve", json=body).status_code == 200
    again = client.post(f"/api/v1/holds/{first}/resolve", json=body)
    assert again.status_code == 409
    assert "already released" in again.json()["detail"]
    bad = client.post(f"/api/v1/holds/{first}/resolve", json=body | {"decision": "maybe"})
    assert bad.status_code == 422
    released = client.get("/api/v1/holds", params={"status": "released"}).json()
    assert released[0]["decided_by"] == "ops"
    assert released[0]["decision_reason"] == "lamp box, checked"
    # Filtered and paged in the database: the next page starts after the last id.
    (still_open,) = client.get("/api/v1/holds", params={"status": "open"}).json()
    assert still_open["hold_id"] != first
    page = client.get("/api/v1/holds", params={"limit": 1}).json()
    assert [h["hold_id"] for h in page] == [first]
    rest = client.get("/api/v1/holds", params={"limit": 1, "after": first}).json()
    assert [h["hold_id"] for h in rest] == [still_open["hold_id"]]
    assert client.get("/api/v1/holds", params={"status": "rejected"}).json() == []
    assert client.get("/api/v1/holds", params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/holds", params={"after": -1}).status_code == 422


def test_a_weighing_at_a_site_its_device_is_not_registered_at_is_only_rejected(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient
) -> None:
    with sessions.begin() as session:
        upsert_site(session, "shymkent-rp-01", name="Shymkent", region="Shymkent", kind="x")
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)  # at almaty-rp-01
    ingest(sessions, [weigh(dev, "500", site_id="shymkent-rp-01")])
    with sessions.begin() as session:
        holds.scan(session)
    (held,) = client.get("/api/v1/holds", params={"status": "open"}).json()
    assert (held["reason"], held["reason_text"]) == (
        "site_not_registered",
        "site is not the one the device was registered at",
    )
    url = f"/api/v1/holds/{held['hold_id']}/resolve"
    release = client.post(url, json={"decision": "release", "reason": "trust the device"})
    assert release.status_code == 409
    assert "never paid at shymkent-rp-01" in release.json()["detail"]
    reject = client.post(url, json={"decision": "reject", "reason": "device is in Almaty"})
    assert reject.status_code == 200
