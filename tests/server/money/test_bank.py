"""Contractors' bank accounts: Kazakh IBANs checked, changes kept and audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from server.ledger.accounting import AuditEntry, BankAccount
from server.money.bank import BankError, account_of, iban_problem, kz_iban, set_account
from server.people.accounts import Role
from server.people.permissions import Actor, PermissionDenied
from tests.support.accounts import BIN_A, add_user, operator

GOOD = kz_iban("125", "KZT5004100100")


def test_a_kazakh_iban_is_checked() -> None:
    assert GOOD == "KZ86125KZT5004100100"  # check digits computed, not typed
    assert iban_problem(GOOD) is None
    assert iban_problem("kz86 125k zt50 0410 0100") is None  # as printed on a form
    assert iban_problem("KZ00125KZT5004100100") == (
        "IBAN KZ00125KZT5004100100: wrong check digits 00, expected 86"
    )
    assert iban_problem("KZ86125KZT50041001") == (
        "IBAN KZ86125KZT50041001: 18 characters, a Kazakh IBAN has 20"
    )
    assert iban_problem("DE89370400440532013000") == (
        "IBAN DE89370400440532013000: a Kazakh IBAN starts with KZ"
    )
    assert (
        iban_problem("KZ86125KZT500410010'")
        == 'IBAN "KZ86125KZT500410010\'": only letters and digits'
    )
    assert iban_problem("") == "IBAN is empty"


def test_an_operator_sets_an_account_and_the_audit_log_says_so(
    sessions: sessionmaker[Session],
) -> None:
    ops = operator(sessions, "ops")
    with sessions.begin() as session:
        account = set_account(session, BIN_A, iban="KZ86 125K ZT50 0410 0100", actor=ops)
    assert (account.iban, account.bic) == (GOOD, "NBRKKZKX")  # the BIC of bank code 125
    with sessions.begin() as session:
        set_account(session, BIN_A, iban=GOOD, bic="KCJBKZKX", bank_name="Bank", actor=ops)
    with sessions() as session:
        current = account_of(session, BIN_A)
        assert current is not None
        assert (current.bic, current.bank_name, current.set_by) == ("KCJBKZKX", "Bank", "ops")
        assert len(session.scalars(select(BankAccount)).all()) == 2  # a change is a new row
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "contractor.bank_account_set")
        ).all()
    assert [e.subject for e in entries] == [f"contractor {BIN_A}"] * 2


def test_a_wrong_account_or_actor_stores_nothing(sessions: sessionmaker[Session]) -> None:
    ops = operator(sessions, "ops")
    for iban, bic, name, message in (
        ("KZ00125KZT5004100100", "", "", "wrong check digits 00, expected 86"),
        (GOOD, "NOTABIC!", "", "BIC NOTABIC!"),
        (GOOD, "", "x" * 201, "at most 200"),
    ):
        with pytest.raises(BankError, match=message), sessions.begin() as session:
            set_account(session, BIN_A, iban=iban, bic=bic, bank_name=name, actor=ops)
    with pytest.raises(BankError, match="BIN '120440012340'"), sessions.begin() as session:
        set_account(session, "120440012340", iban=GOOD, actor=ops)
    contractor = add_user(sessions, "eco", Role.CONTRACTOR, BIN_A)
    with pytest.raises(PermissionDenied, match="only operators"), sessions.begin() as session:
        set_account(session, BIN_A, iban=GOOD, actor=Actor(contractor, "test"))
    with sessions() as session:
        assert session.scalars(select(BankAccount)).all() == []


def test_an_account_row_is_never_edited(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        set_account(session, BIN_A, iban=GOOD, actor=operator(sessions, "ops"))
    changes = ["UPDATE bank_accounts SET iban = 'KZ0'", "DELETE FROM bank_accounts"]
    with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":  # SQLite has no TRUNCATE
            changes.append("TRUNCATE bank_accounts")
    for sql in changes:
        with (
            pytest.raises(DBAPIError, match="bank_accounts is append-only"),
            sessions.begin() as session,
        ):
            session.execute(text(sql))
