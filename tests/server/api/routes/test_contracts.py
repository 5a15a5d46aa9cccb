"""Contracts over HTTP: upload (all or nothing), current versions, history."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.server.api.conftest import TestClient

HEADER = (
    "contract_id,tender_id,lot,contractor_bin,contractor_name,category,stage,regions,"
    "site_ids,period_start,period_end,cap_t,rate,rate_unit,budget_cap_kzt\n"
)
ROW = (
    "C-1,T-1,1,120440012349,Eco Tyre LLP,tyres,collection,Almaty,,2026-01-01,2026-12-31,"
    "{cap},13.50,MRP/t,\n"
)


def upload(client: TestClient, body: str, name: str = "lots.csv") -> tuple[int, object]:
    r = client.post(
        "/api/v1/contracts/import",
        files={"file": (name, body.encode(), "text/csv")},
    )
    return r.status_code, r.json()


def test_import_list_and_versions(sessions: sessionmaker[Session], client: TestClient) -> None:
    assert upload(client, HEADER + ROW.format(cap="35000")) == (
        200,
        {"created": 1, "amended": 0, "unchanged": 0},
    )
    assert upload(client, HEADER + ROW.format(cap="36000"))[1] == {
        "created": 0,
        "amended": 1,
        "unchanged": 0,
    }
    status, problems = upload(client, HEADER + ROW.format(cap="-1"))
    assert status == 422
    assert problems == {
        "detail": ["lots.csv:2:cap_t: '-1' is not a non-negative decimal (use . for the point)"]
    }
    assert upload(client, "x", name="lots.pdf")[0] == 422
    (current,) = client.get("/api/v1/contracts").json()
    assert (current["version"], current["cap_t"], current["rate_unit"]) == (2, "36000", "MRP/t")
    history = client.get("/api/v1/contracts/C-1/versions").json()
    assert [v["cap_t"] for v in history] == ["35000", "36000"]
    assert client.get("/api/v1/contracts/C-9/versions").status_code == 404
