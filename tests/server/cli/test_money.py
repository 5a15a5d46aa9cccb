"""``epr-server`` money commands end to end on a ledger (SQLite and PostgreSQL): exit codes
and output.

Every command that changes something acts as an existing account (``--as``), proved by
an API token of it in ``EPR_TOKEN`` (or, on a terminal, its password)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import AuditEntry
from server.people.accounts import Role
from server.people.permissions import Permission, grant
from server.people.tokens import create_token
from tests.server.cli.conftest import Run, account
from tests.support.accounts import PASSWORD
from tests.support.builders import fake_device, register
from tests.support.tamper import bypassing_append_only
from tests.support.tickets import BIN, ingest, weigh

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
LOTS = (
    "contract_id,tender_id,lot,contractor_bin,contractor_name,category,stage,regions,"
    "site_ids,period_start,period_end,cap_t,rate,rate_unit,budget_cap_kzt\n"
    "EPR-T01,EPR-T-2026,1,120440012349,Eco Tyre LLP,tyres,collection,Almaty,,2026-01-01,"
    "2026-12-31,100,13.50,MRP/t,\n"
)


def test_money_commands(
    tmp_path: Path, ledger: tuple[str, sessionmaker[Session]], run: Run
) -> None:
    sessions = ledger[1]
    almaty = account(sessions, "ops.almaty", Role.OPERATOR)
    ops = account(sessions, "ops", Role.OPERATOR, Permission.COMPUTE)
    head = account(sessions, "head.of.payments", Role.OPERATOR, Permission.APPROVE)
    treasury = account(sessions, "treasury", Role.OPERATOR, Permission.PAY)
    eco = account(sessions, "eco", Role.CONTRACTOR, contractor_bin=BIN)

    lots = tmp_path / "lots.csv"
    lots.write_text(LOTS)
    assert run("import-contracts", str(lots), "--as", "ops.almaty", token=almaty)[1].endswith(
        "1 new, 0 amended, 0 unchanged\n"
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(LOTS.replace("120440012349", "120440012348"))
    code, _, err = run("import-contracts", str(bad), "--as", "ops.almaty", token=almaty)
    assert code == 1
    assert f"{bad}:2:contractor_bin: 120440012348 fails the BIN check digit" in err
    mrp_file = Path(__file__).parents[3] / "docs" / "data" / "mrp.csv"
    code, out, err = run("mrp", "load", str(mrp_file), "--by", "ops.almaty", token=almaty)
    assert "new version 1" in out
    assert "--by is deprecated: use --as USERNAME" in err  # the old spelling still works
    assert "from 2026-01: 4325 KZT" in run("mrp", "show")[1]
    badges = tmp_path / "badges.csv"
    badges.write_text(f"badge,contractor_bin\nB-1,{BIN}\n")
    assert (
        "badge map new version 1"
        in run("badges", "load", str(badges), "--as", "ops.almaty", token=almaty)[1]
    )

    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1200", badge="B-1"), weigh(dev, "0.4", badge="B-1")])

    # A bare month still previews, as before.
    code, out, _ = run("statements", "2026-03")
    assert code == 0
    assert "Eco Tyre LLP" in out
    code, out, _ = run("statements", "compute", "2026-03", "--as", "ops", token=ops)
    assert code == 0
    assert "1 draft(s)" in out
    assert "2 ticket(s) scanned, 1 new hold(s)" in out
    draft_id = int(out.split("draft ")[1].split(":")[0])
    total = out.split(" KZT")[0].rsplit(" ", 1)[1]
    code, out, _ = run("holds", "list", "--status", "open")
    assert "plausible" in out
    code, out, err = run(
        "holds", "resolve", "--ticket", f"{dev.device_id}:2", "--decision", "reject",
        "--as", "ops.almaty", "--reason", "scale drift", token=almaty,
    )  # fmt: skip
    assert code == 0, err
    assert "rejected by ops.almaty" in out
    assert run("holds", "resolve", "--ticket", "nope", "--decision", "reject", "--as",
               "ops.almaty", "--reason", "y", token=almaty)[0] == 1  # fmt: skip
    code, _, err = run("statements", "pay", str(draft_id), "--as", "treasury", "--reference",
                       "PP-1", "--total", total, token=treasury)  # fmt: skip
    assert (code, err.strip()) == (
        1,
        f"statement {draft_id} is draft, only an approved one is paid",
    )
    code, _, err = run("statements", "approve", str(draft_id), "--as", "head.of.payments",
                       "--total", "1.00", token=head)  # fmt: skip
    assert code == 1
    assert f"statement {draft_id} totals {total} KZT, not 1.00: approval refused" in err
    code, out, err = run("statements", "approve", str(draft_id), "--as", "head.of.payments",
                         "--total", total, token=head)  # fmt: skip
    assert code == 0, err
    assert f"({BIN} 2026-03, {total} KZT) approved by head.of.payments" in out
    code, out, _ = run("statements", "pay", str(draft_id), "--as", "treasury", "--reference",
                       "PP-2026-1", "--total", total, token=treasury)  # fmt: skip
    assert f"paid (PP-2026-1, {total} KZT) by treasury" in out
    assert "paid" in run("statements", "list")[1]
    code, out, _ = run(
        "disputes", "open", "--bin", BIN, "--statement", str(draft_id),
        "--line", "EPR-T01@v1:collection", "--comment", "rate?", "--as", "eco", token=eco,
    )  # fmt: skip
    assert code == 0
    dispute = int(out.split()[1])
    code, _, _ = run("disputes", "decide", str(dispute), "--decision", "reject", "--reason",
                     "MRP 2026 per the budget law", "--as", "ops.almaty", token=almaty)  # fmt: skip
    assert code == 0
    (seen,) = [json.loads(line) for line in run("disputes", "list", "--bin", BIN)[1].splitlines()]
    assert (seen["status"], seen["decision_reason"]) == ("rejected", "MRP 2026 per the budget law")

    code, out, _ = run("statements", "verify")
    assert code == 0, out
    assert "1 statement(s), 2 ticket(s) checked, 0 problem(s)" in out
    kept = tmp_path / "head.json"
    assert run("audit", "head", "--out", str(kept))[0] == 0
    assert run("audit", "verify", "--head", str(kept))[0] == 0
    with sessions.begin() as session, bypassing_append_only(session):
        session.execute(text("UPDATE tickets SET net_g = 1200001 WHERE seq = 1"))
    code, out, _ = run("statements", "verify")
    assert code == 1
    assert "MISMATCH" in out
    assert "stored net_g differ from the signed payload" in out
    code, out, _ = run("mrp", "show")
    assert code == 0
    with sessions() as session:
        steps = {
            e.action: (e.actor, json.loads(e.data).get("credential"))
            for e in session.scalars(select(AuditEntry))
        }
    assert steps["statements.computed"] == ("ops", "token #2")
    assert steps["statement.approved"] == ("head.of.payments", "token #3")
    assert steps["statement.paid"] == ("treasury", "token #4")
    assert steps["contracts.imported"][0] == "ops.almaty"


def test_the_command_line_acts_only_as_an_authenticated_account_with_the_permission(
    tmp_path: Path,
    ledger: tuple[str, sessionmaker[Session]],
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions = ledger[1]
    anna = account(sessions, "ops.anna", Role.OPERATOR, Permission.COMPUTE, Permission.APPROVE)
    bob = account(sessions, "ops.bob", Role.OPERATOR)
    auditor = account(sessions, "audit1", Role.AUDITOR)
    lots = tmp_path / "lots.csv"
    lots.write_text(LOTS)
    code, _, err = run("import-contracts", str(lots), token=anna)
    assert (code, err.strip()) == (1, "name the account acting: --as USERNAME")
    code, _, err = run("import-contracts", str(lots), "--as", "nobody", token=anna)
    assert (code, err.strip()) == (1, "no account 'nobody'")
    code, _, err = run("import-contracts", str(lots), "--as", "ops.bob", token=anna)
    assert (code, err.strip()) == (
        1,
        "EPR_TOKEN is an API token of another account, not of ops.bob",
    )
    code, _, err = run("import-contracts", str(lots), "--as", "ops.bob", token="epr_forged")
    assert code == 1
    assert "EPR_TOKEN is not a valid API token" in err
    code, _, err = run("import-contracts", str(lots), "--as", "ops.bob", "--by", "ops.anna",
                       token=bob)  # fmt: skip
    assert (code, err.splitlines()[-1]) == (
        1,
        "--as ops.bob and --by ops.anna name different accounts",
    )
    code, _, err = run("import-contracts", str(lots), "--as", "audit1", token=auditor)
    assert (code, err.strip()) == (
        1,
        "audit1 has the role auditor: this command needs the role operator",
    )
    # Without a token and without a terminal there is nothing to prove who acts.
    code, _, err = run("import-contracts", str(lots), "--as", "ops.bob")
    assert code == 1
    assert err.startswith("no credential for ops.bob: set EPR_TOKEN")
    # On a terminal the password is asked with getpass (never taken from argv).
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "not the password")
    code, _, err = run("import-contracts", str(lots), "--as", "ops.bob")
    assert (code, err.strip()) == (1, "ops.bob: wrong user name or password")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": PASSWORD)
    code, out, err = run("import-contracts", str(lots), "--as", "ops.bob")
    assert code == 0, err
    mrp_file = Path(__file__).parents[3] / "docs" / "data" / "mrp.csv"
    assert run("mrp", "load", str(mrp_file), "--as", "ops.bob")[0] == 0
    dev = fake_device(tmp_path, start=T0)
    register(sessions, dev)
    ingest(sessions, [weigh(dev, "1200")])
    # An operator without the permission is refused by the library, as on the pages.
    code, _, err = run("statements", "compute", "2026-03", "--as", "ops.bob")
    assert (code, err.strip()) == (1, "ops.bob does not hold the permission statements.compute")
    code, out, _ = run("statements", "compute", "2026-03", "--as", "ops.anna", token=anna)
    assert code == 0
    draft_id = int(out.split("draft ")[1].split(":")[0])
    total = out.split(" KZT")[0].rsplit(" ", 1)[1]
    code, _, err = run("statements", "approve", str(draft_id), "--as", "ops.anna", "--total", total,
                       token=anna)  # fmt: skip
    assert (code, err.strip()) == (
        1,
        "approval must come from another account than the one that computed"
        f" statement {draft_id} (ops.anna)",
    )
    code, _, err = run("statements", "approve", str(draft_id), "--as", "ops.bob", "--total", total)
    assert (code, err.strip()) == (1, "ops.bob does not hold the permission statements.approve")
    with sessions.begin() as session:
        grant(session, "ops.bob", Permission.APPROVE, by="test")
    code, _, err = run("user", "disable", "ops.bob")
    assert code == 0
    code, _, err = run("statements", "approve", str(draft_id), "--as", "ops.bob", "--total", total)
    assert (code, err.strip()) == (1, "account ops.bob is disabled")
    run("user", "enable", "ops.bob")
    code, out, err = run(
        "statements", "approve", str(draft_id), "--as", "ops.bob", "--total", total
    )
    assert code == 0, err
    with sessions() as session:
        (approved,) = [
            json.loads(e.data)
            for e in session.scalars(select(AuditEntry))
            if e.action == "statement.approved"
        ]
    assert approved["credential"] == "password"


def test_permissions_are_granted_on_the_command_line(
    ledger: tuple[str, sessionmaker[Session]], run: Run
) -> None:
    sessions = ledger[1]

    def add(name: str, *extra: str) -> tuple[int, str, str]:
        import io
        import sys

        sys.stdin = io.StringIO("a long enough password\n")
        try:
            return run("user", "add", name, "--password-stdin", *extra)
        finally:
            sys.stdin = sys.__stdin__

    code, out, _ = add("admin", "--role", "operator")
    assert out.splitlines() == [
        "user admin added (operator)",
        "user admin: accounts.admin granted (the first operator)",
    ]
    code, out, _ = add("ops.anna", "--role", "operator", "--grant", "statements.compute")
    assert out.splitlines() == ["user ops.anna added (operator)",
                                "user ops.anna: statements.compute granted"]  # fmt: skip
    assert add("audit1", "--role", "auditor", "--grant", "statements.pay")[0] == 2
    assert add("audit1", "--role", "auditor")[0] == 0
    code, _, err = run("user", "grant", "audit1", "statements.pay")
    assert (code, "only operators" in err) == (1, True)
    with sessions.begin() as session:
        admin_token, _ = create_token(session, "admin")
        anna_token, _ = create_token(session, "ops.anna")
    code, out, _ = run("user", "grant", "ops.anna", "statements.approve", "--as", "admin",
                       token=admin_token)  # fmt: skip
    assert (code, out) == (0, "user ops.anna: statements.approve granted\n")
    code, _, err = run("user", "grant", "ops.anna", "statements.pay", "--as", "ops.anna",
                       token=anna_token)  # fmt: skip
    assert (code, err.strip()) == (1, "ops.anna does not hold the permission accounts.admin")
    code, out, _ = run("user", "revoke", "ops.anna", "statements.compute")
    assert out == "user ops.anna: statements.compute revoked\n"
    assert run("user", "grant", "ops.anna", "statements.everything")[0] == 1
    code, out, _ = run("user", "list")
    assert out.splitlines() == [
        "admin\toperator\t-\tactive\taccounts.admin",
        "audit1\tauditor\t-\tactive\t-",
        "ops.anna\toperator\t-\tactive\tstatements.approve",
    ]
    with sessions() as session:
        actors = [
            (e.actor, e.action)
            for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]
    assert actors[-2:] == [
        ("admin", "account.permission_granted"),
        (actors[-1][0], "account.permission_revoked"),
    ]
    assert actors[-1][0].startswith("cli:")
