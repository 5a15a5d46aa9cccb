"""``epr-server statements export``, ``register`` and ``bank-account`` on a ledger."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import StoredStatement
from server.money.bank import kz_iban
from server.people.tokens import create_token
from tests.server.cli.conftest import Run
from tests.server.money.test_statements import setup_month
from tests.support.tickets import BIN

IBAN = kz_iban("601", "A000012345678")


def token_of(sessions: sessionmaker[Session], name: str) -> str:
    with sessions.begin() as session:
        token, _ = create_token(session, name, label="cli")
    return token


def test_export_and_pay_from_the_register(
    tmp_path: Path, ledger: tuple[str, sessionmaker[Session]], run: Run
) -> None:
    _, sessions = ledger
    sid = setup_month(tmp_path, sessions)
    ops, treasury = token_of(sessions, "ops"), token_of(sessions, "treasury")
    pdf, xlsx = tmp_path / "s.pdf", tmp_path / "s.xlsx"
    args = ("statements", "export", str(sid), "--lang", "kk", "--out")
    assert run(*args[:3], "--format", "pdf", *args[3:], str(pdf))[0] == 0
    assert run(*args[:3], "--format", "xlsx", *args[3:], str(xlsx))[0] == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert xlsx.read_bytes().startswith(b"PK")
    assert run("statements", "export", "999") == (1, "", "statement 999 does not exist\n")

    bad = IBAN[:2] + "00" + IBAN[4:]
    code, _, err = run("bank-account", "set", BIN, "--iban", bad, "--as", "ops", token=ops)
    assert (code, err) == (1, f"IBAN {bad}: wrong check digits 00, expected {IBAN[2:4]}\n")
    assert run("bank-account", "set", BIN, "--iban", IBAN, "--as", "ops", token=ops)[0] == 0
    assert IBAN in run("bank-account", "list")[1]

    sheet = tmp_path / "register.csv"
    code, _, err = run("register", "export", "2026-03", "--format", "csv", "--out", str(sheet))
    assert code == 0
    assert "1 statement(s), 0 with a problem, payable 546731.72 KZT" in err
    header, row = sheet.read_text("utf-8").splitlines()
    tampered = tmp_path / "tampered.csv"
    tampered.write_text(f"{header}\n{row.replace('546731.72', '546731.00')}PP-9\n", "utf-8")
    code, out, _ = run("register", "mark-paid", str(tampered), "--as", "treasury", token=treasury)
    assert code == 1
    assert f"tampered.csv:2: REFUSED statement {sid}: amount 546731.00 is not the ledger's" in out
    sheet.write_text(f"{header}\n{row}PP-2026-0412\n", "utf-8")
    code, out, _ = run("register", "mark-paid", str(sheet), "--as", "treasury", token=treasury)
    assert code == 0, out
    assert f"register.csv:2: PAID statement {sid} paid: 546731.72 KZT, PP-2026-0412" in out
    code, out, _ = run("register", "mark-paid", str(sheet), "--as", "treasury", token=treasury)
    assert code == 0
    assert "ALREADY" in out
    with sessions() as session:
        stored = session.get(StoredStatement, sid)
        assert stored is not None
        assert (stored.status, stored.paid_by) == ("paid", "treasury")
    missing = str(tmp_path / "nope.csv")
    code, _, err = run("register", "mark-paid", missing, "--as", "treasury", token=treasury)
    assert (code, err) == (1, f"{missing}: No such file or directory\n")
