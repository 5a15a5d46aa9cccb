"""A contractor sees only its own data, whatever URL or filter it sends."""

from __future__ import annotations

from decimal import Decimal

from tests.support.accounts import BIN_A, BIN_B
from tests.support.web import PERIOD, Web


def test_statements_list_is_filtered_to_the_contractor(web: Web) -> None:
    with web.client() as c:
        staff = c.get(f"/api/v1/statements/{PERIOD}", headers=web.token("auditor1")).json()
        assert {s["contractor_bin"] for s in staff} == {BIN_A, BIN_B}
        own = c.get(f"/api/v1/statements/{PERIOD}", headers=web.token("eco")).json()
        assert [s["contractor_bin"] for s in own] == [BIN_A]
        # 600.5 + 300.25 + 250 kg against a 1 t cap: 1 t paid at 53 082 KZT/t.
        assert own[0]["total_kzt"] == "53082.00"
        assert own[0]["over_cap"][0]["tonnes"] == "0.15075"
        assert own[0]["hash"] == next(s["hash"] for s in staff if s["contractor_bin"] == BIN_A)


def test_another_contractors_statement_is_refused(web: Web) -> None:
    with web.client() as c:
        headers = web.token("eco")
        assert (
            c.get(f"/api/v1/contractors/{BIN_A}/statements/{PERIOD}", headers=headers).status_code
            == 200
        )
        refused = c.get(f"/api/v1/contractors/{BIN_B}/statements/{PERIOD}", headers=headers)
        assert refused.status_code == 404
        assert refused.json() == {"detail": f"contractor {BIN_B} not found"}
        assert c.get(f"/api/v1/contractors/{BIN_B}/overview", headers=headers).status_code == 404
        staff = c.get(
            f"/api/v1/contractors/{BIN_B}/statements/{PERIOD}", headers=web.token("operator1")
        )
        # 410 + 95.5 kg = 0.5055 t x 53 082 KZT/t = 26 832.951, rounded once.
        assert staff.json()["total_kzt"] == "26832.95"


def test_ticket_lists_and_csv_are_scoped(web: Web) -> None:
    a, b = web.seeded.tickets_a, web.seeded.tickets_b
    with web.client() as c:
        eco = web.token("eco")
        own = c.get(f"/api/v1/tickets?period={PERIOD}", headers=eco).json()
        assert [t["id"] for t in own["tickets"]] == a
        assert own["net_tonnes"] == "1.15075"
        # The third ticket crosses the cap: split into a paid and an over-cap share.
        last = own["tickets"][-1]["attributions"]
        assert [(x["portion"], x["kg"]) for x in last] == [
            ("paid", "99.250"),
            ("over_cap", "150.750"),
        ]
        # Asking for the other contractor's tickets is refused, not silently widened.
        tampered = c.get(f"/api/v1/tickets?period={PERIOD}&contractor={BIN_B}", headers=eco)
        assert tampered.status_code == 404
        # Filters narrow within the scope, never out of it.
        other_site = c.get(f"/api/v1/tickets?period={PERIOD}&site=aktobe-rp-01", headers=eco)
        assert other_site.json()["total"] == 0
        staff = web.token("auditor1")
        everything = c.get(f"/api/v1/tickets?period={PERIOD}", headers=staff).json()
        assert sorted(t["id"] for t in everything["tickets"]) == sorted(a + b)
        assert everything["net_tonnes"] == "1.65625"
        only_b = c.get(f"/api/v1/tickets?period={PERIOD}&contractor={BIN_B}", headers=staff)
        assert [t["id"] for t in only_b.json()["tickets"]] == b
        csv = c.get(f"/api/v1/tickets.csv?period={PERIOD}", headers=eco)
        assert csv.headers["content-type"].startswith("text/csv")
        rows = csv.text.splitlines()
        assert rows[0].startswith("ticket_id,device_id,seq,")
        assert [int(r.split(",")[0]) for r in rows[1:]] == a
        assert "EPR-A1/collection/over_cap:150.750" in rows[-1]


def test_directory_and_overview(web: Web) -> None:
    with web.client() as c:
        assert [
            x["bin"] for x in c.get("/api/v1/contractors", headers=web.token("eco")).json()
        ] == [BIN_A]
        staff = c.get("/api/v1/contractors", headers=web.token("operator1")).json()
        assert {x["bin"] for x in staff} == {BIN_A, BIN_B}
        view = c.get(
            f"/api/v1/contractors/{BIN_A}/overview?months=24", headers=web.token("eco")
        ).json()
        march = [d for d in view["deliveries"] if d["period"] == PERIOD]
        assert march == [
            {
                "period": PERIOD,
                "category": "tyres",
                "stage": "collection",
                "paid_t": "1",
                "unpaid_t": "0.15075",
            }
        ]
        assert Decimal(
            next(s for s in view["statements"] if s["period"] == PERIOD)["total_kzt"]
        ) == Decimal("53082.00")
