"""Contracts pages and API: caps, paid, over cap and what is left — the statements' own
figures — for staff, and scoped for a contractor (another's contract: "not found")."""

from __future__ import annotations

import re
from decimal import Decimal

from server.money.statements import statement_for
from server.web.i18n import Translator
from tests.support.accounts import BIN_A, BIN_B
from tests.support.web import PERIOD, Web

EN = {"Accept-Language": "en"}


def test_staff_see_every_contract_with_the_statements_figures(web: Web) -> None:
    with web.sessions() as session:
        a = statement_for(session, BIN_A, PERIOD)
        b = statement_for(session, BIN_B, PERIOD)
    assert a is not None
    assert b is not None
    with web.login("auditor1") as c:
        page = c.get("/contracts", headers=EN)
        assert page.status_code == 200
        row = page.text.split('id="contract-EPR-A1"')[1].split("</tr>")[0]
        # 1.15075 t weighed against a 1 t cap: 1 t paid, 0.151 t over, nothing left.
        assert 'class="capped"' in page.text.split('id="contract-EPR-A1"')[0][-40:] + row[:20]
        cells = re.findall(r'<td class="num[^"]*">(?:<span[^>]*>)?([^<]*)', row)
        assert cells == ["1.000", "1.000", "0.151", "0.000", "—", "53,082.00", "—"]
        assert "Steppe Recycling" in page.text
        one = c.get("/contracts/EPR-B1", headers=EN)
        assert one.status_code == 200
        svg = one.text.split("<svg")[1].split("</svg>")[0]
        assert 'role="img"' in svg
        assert "<title" in svg
        assert "<desc" in svg
        assert "EPR-B1: tonnes per month and the cap" in svg
        assert ">50.000</text>" in svg  # the cap, written as text
        assert ">0.506</text>" in svg  # March's tonnes, written as text
        assert "<script" not in one.text
        assert 'class="paid-t">0.506<' in one.text
        left = Translator("en").number(Decimal("49.4945"), 3)  # as every page rounds
        assert f'class="remaining-t">{left}<' in one.text
        listed = {x["contract_id"]: x for x in c.get("/api/v1/contracts?months=true").json()}
        assert "months" not in c.get("/api/v1/contracts").json()[0]
    assert set(listed) == {"EPR-A1", "EPR-B1"}
    # Full precision, and equal to the statement's own lines.
    assert listed["EPR-A1"]["paid_t"] == str(a.lines[0].tonnes) == "1"
    assert listed["EPR-A1"]["paid_kzt"] == str(a.total_kzt) == "53082.00"
    assert Decimal(listed["EPR-A1"]["over_cap_t"]) == a.over_cap[0].tonnes == Decimal("0.15075")
    assert listed["EPR-A1"]["remaining_t"] == "0"
    assert listed["EPR-B1"]["paid_t"] == str(b.total_tonnes) == "0.5055"
    assert listed["EPR-B1"]["paid_kzt"] == str(b.total_kzt)
    assert listed["EPR-B1"]["remaining_t"] == "49.4945"
    assert listed["EPR-B1"]["remaining_kzt"] is None  # no budget cap
    march = next(m for m in listed["EPR-B1"]["months"] if m["period"] == PERIOD)
    assert march == {
        "period": PERIOD,
        "paid_t": "0.5055",
        "over_cap_t": "0",
        "amount_kzt": str(b.total_kzt),
        "paid_to_date_t": "0.5055",
    }


def test_a_contractor_sees_only_its_own_contracts(web: Web) -> None:
    with web.login("eco") as c:
        page = c.get("/contracts", headers=EN)
        assert "EPR-A1" in page.text
        assert "EPR-B1" not in page.text
        assert "Steppe" not in page.text
        home = c.get(f"/contractors/{BIN_A}", headers=EN)
        caps = home.text.split('id="cap-EPR-A1"')[1].split("</tr>")[0]
        assert 'class="num remaining-t">0.000<' in caps
        # Another's contract is answered exactly as a missing one.
        theirs = c.get("/contracts/EPR-B1", headers=EN)
        missing = c.get("/contracts/EPR-NONE", headers=EN)
        assert theirs.status_code == missing.status_code == 404
        assert "Steppe" not in theirs.text
        assert theirs.text.replace("EPR-B1", "X") == missing.text.replace("EPR-NONE", "X")
        assert [x["contract_id"] for x in c.get("/api/v1/contracts").json()] == ["EPR-A1"]
        r1 = c.get("/api/v1/contracts/EPR-B1/versions")
        r2 = c.get("/api/v1/contracts/EPR-NONE/versions")
        assert r1.status_code == r2.status_code == 404
        assert r1.json()["detail"].replace("EPR-B1", "X") == r2.json()["detail"].replace(
            "EPR-NONE", "X"
        )
        assert c.get("/api/v1/contracts/EPR-A1/versions").status_code == 200
        # Contractors read; importing stays the operators'.
        r = c.post("/api/v1/contracts/import", files={"file": ("x.csv", b"a", "text/csv")})
        assert r.status_code == 403


def test_hostile_contract_ids_are_not_found_and_escaped(web: Web) -> None:
    with web.login("operator1") as c:
        for ident in ("<script>alert(1)</script>", "x" * 5000, "EPR-A1' OR '1'='1", "%00"):
            r = c.get(f"/contracts/{ident}", headers=EN)
            assert r.status_code == 404, ident
            assert "<script>alert" not in r.text
