"""Documents over HTTP: a statement's PDF and XLSX with the statement's own access rule,
the payment register for staff, its pages, and the public check of a hash."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.money.bank import kz_iban
from server.people.accounts import Role
from server.people.permissions import Permission
from tests.server.api.conftest import ClientAs, TestClient
from tests.support.accounts import BIN_B
from tests.support.builders import fake_device, register
from tests.support.tickets import BIN, contract, import_contracts, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
IBAN = kz_iban("722", "S000012345678")


def approved(
    tmp_path: Path, sessions: sessionmaker[Session], client_as: ClientAs
) -> dict[str, str]:
    import_contracts(sessions, contract())
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1500")])
    computer = client_as("ops.anna", Role.OPERATOR, permissions=[Permission.COMPUTE])
    (draft,) = computer.post("/api/v1/statements/compute", json={"periods": ["2026-03"]}).json()[
        "drafts"
    ]
    approver = client_as("ops.bob", Role.OPERATOR, permissions=[Permission.APPROVE])
    total = {"expected_total_kzt": draft["total_kzt"]}
    assert approver.post(f"/api/v1/statements/{draft['id']}/approve", json=total).status_code == 200
    return dict(draft)


def test_a_statement_document_is_its_owners_and_staffs_only(
    tmp_path: Path, sessions: sessionmaker[Session], client: TestClient, client_as: ClientAs
) -> None:
    sid = approved(tmp_path, sessions, client_as)["id"]
    owner = client_as("eco", Role.CONTRACTOR, BIN)
    rival = client_as("rival", Role.CONTRACTOR, BIN_B)
    for who in (owner, client):
        pdf = who.get(f"/api/v1/statements/{sid}.pdf?lang=kk")
        assert pdf.status_code == 200
        assert pdf.content.startswith(b"%PDF")
        assert pdf.headers["content-type"] == "application/pdf"
        assert f"statement-{sid}-{BIN}-2026-03-kk.pdf" in pdf.headers["content-disposition"]
        xlsx = who.get(f"/api/v1/statements/{sid}.xlsx")
        assert xlsx.status_code == 200
        assert xlsx.content.startswith(b"PK")
    for path in (f"{sid}.pdf", f"{sid}.xlsx", "999.pdf"):
        answer = rival.get(f"/api/v1/statements/{path}")
        assert answer.status_code == 404
        assert answer.json()["detail"].startswith("statement ")
    assert owner.get(f"/api/v1/statements/{sid}.pdf?lang=de").status_code == 422
    assert owner.get(f"/api/v1/statements/{2**63}.pdf").status_code == 422
    # The statement's page links its documents.
    page = owner.get(f"/statements/{sid}").text
    assert f'href="/api/v1/statements/{sid}.pdf?lang=kk"' in page


def test_the_register_is_for_staff(
    tmp_path: Path, sessions: sessionmaker[Session], client_as: ClientAs
) -> None:
    draft = approved(tmp_path, sessions, client_as)
    owner = client_as("eco", Role.CONTRACTOR, BIN)
    auditor = client_as("audit", Role.AUDITOR)
    ops = client_as("ops.carol", Role.OPERATOR, permissions=[Permission.PAY])
    for path in ("/api/v1/register/2026-03.csv", "/api/v1/register/2026-03.xlsx", "/register"):
        assert owner.get(path).status_code == 403
    csv = auditor.get("/api/v1/register/2026-03.csv").text
    assert f"{draft['id']},2026-03,original,approved,{BIN}," in csv
    assert ",no_bank_account," in csv
    assert auditor.get("/api/v1/register/2026-13.csv").status_code == 422
    excel = auditor.get("/api/v1/register/2026-03.csv?excel=true")
    assert excel.content.startswith("\ufeff".encode())
    assert auditor.get("/api/v1/register/2026-03.xlsx?lang=ru").content.startswith(b"PK")
    # The page: a wrong IBAN is refused with the check digits it should have.
    assert (
        auditor.post("/register/bank", data={"contractor_bin": BIN, "iban": IBAN}).status_code
        == 403
    )
    bad = IBAN[:2] + "00" + IBAN[4:]
    refused = ops.post(
        "/register/bank", data={"contractor_bin": BIN, "iban": bad, "period": "2026-03"}
    )
    assert "wrong check digits 00, expected " + IBAN[2:4] in refused.text
    ops.post("/register/bank", data={"contractor_bin": BIN, "iban": IBAN, "period": "2026-03"})
    page = ops.get("/register?period=2026-03").text
    assert IBAN in page
    assert 'href="/api/v1/register/2026-03.xlsx?lang=kk"' in page
    # Marking paid from the register brought back, on the page.
    sheet = auditor.get("/api/v1/register/2026-03.csv").text
    header, row = sheet.splitlines()
    assert row.endswith(",")  # payment_ref, the last column, empty
    upload = f"{header}\r\n{row}PP-77\r\n".encode()
    done = ops.post(
        "/register/mark-paid",
        data={"period": "2026-03"},
        files={"file": ("register.csv", upload, "text/csv")},
    )
    assert done.status_code == 200
    assert f"statement {draft['id']} paid" in done.text
    junk = ops.post(
        "/register/mark-paid",
        data={"period": "2026-03"},
        files={"file": ("register.csv", b"\xff\xfe", "text/csv")},
    )
    assert "not UTF-8" in junk.text
    statement = auditor.get(f"/api/v1/statements/{draft['id']}").json()
    assert (statement["status"], statement["payment_ref"]) == ("paid", "PP-77")


def test_the_check_page_says_only_exists_and_status(
    tmp_path: Path, sessions: sessionmaker[Session], client_as: ClientAs
) -> None:
    draft = approved(tmp_path, sessions, client_as)
    visitor = TestClient(client_as("audit", Role.AUDITOR).app)  # no login at all
    visitor.__enter__()
    try:
        found = visitor.get(f"/check/{draft['sha256']}", headers={"Accept-Language": "en"})
        assert found.status_code == 200
        assert "A document with this hash is on record." in found.text
        assert ">approved<" in found.text
        for secret in (draft["total_kzt"], BIN, "Eco Tyre"):
            assert secret not in found.text
        answers = [
            visitor.get(f"/check/{h}", headers={"Accept-Language": "en"})
            for h in (
                secrets.token_hex(32),
                "not-a-hash",
                draft["sha256"].upper(),
                "x" * 5000,
                "a/b",
            )
        ]
        assert {a.status_code for a in answers} == {404}
        results = {a.text.split('id="check-result">')[1].split("<")[0] for a in answers}
        assert results == {"No document with this hash was found."}
    finally:
        visitor.__exit__(None, None, None)
