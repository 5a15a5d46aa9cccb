"""Contractors' bank accounts: where a statement is paid.

It owns checking an account (a Kazakh IBAN: ``KZ``, 20 characters, ISO 13616 check
digits, through ``schwifty``; a BIC of 8 or 11 characters) and keeping it: one
``bank_accounts`` row per change, the newest row of a BIN being its account, each
change set by an operator and written to the audit log. The payment register
(:mod:`server.money.documents.register`) reads the accounts from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import schwifty
from schwifty import exceptions as iban_errors
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.identifiers import bin_problem
from server.ledger import audit
from server.ledger.accounting import BankAccount
from server.people.accounts import Role
from server.people.permissions import Actor, PermissionDenied

KZ_IBAN_LENGTH = 20


class BankError(ValueError):
    """A bank account that cannot be kept; the message names the field and the reason."""


def _compact(text: str) -> str:
    return "".join(text.split()).upper()


def iban_problem(text: str) -> str | None:
    """Why ``text`` is not a Kazakh IBAN, in one line, or None if it is one."""
    iban = _compact(text)
    if not iban:
        return "IBAN is empty"
    if not iban.isascii() or not iban.isalnum():
        return f"IBAN {iban!r}: only letters and digits"
    if not iban.startswith("KZ"):
        return f"IBAN {iban}: a Kazakh IBAN starts with KZ"
    if len(iban) != KZ_IBAN_LENGTH:
        return f"IBAN {iban}: {len(iban)} characters, a Kazakh IBAN has {KZ_IBAN_LENGTH}"
    try:
        schwifty.IBAN(iban)
    except iban_errors.InvalidChecksumDigits:
        expected = schwifty.IBAN.generate(
            "KZ", bank_code=iban[4:7], account_code=iban[7:]
        ).checksum_digits
        return f"IBAN {iban}: wrong check digits {iban[2:4]}, expected {expected}"
    except iban_errors.SchwiftyException as exc:
        return f"IBAN {iban}: {str(exc).lower()}"
    return None


def kz_iban(bank_code: str, account_code: str) -> str:
    """A Kazakh IBAN with its check digits computed (test and demo data)."""
    return str(schwifty.IBAN.generate("KZ", bank_code=bank_code, account_code=account_code).compact)


def bic_problem(text: str) -> str | None:
    bic = _compact(text)
    if not bic:
        return None  # optional: the IBAN names the bank
    try:
        schwifty.BIC(bic)
    except iban_errors.SchwiftyException as exc:
        return f"BIC {bic}: {str(exc).lower()}"
    return None


@dataclass(frozen=True, slots=True)
class Account:
    contractor_bin: str
    iban: str
    bic: str
    bank_name: str
    set_by: str
    set_at: datetime

    @property
    def problem(self) -> str | None:
        """Checked again when read: a row stored by an older rule still says what is wrong."""
        return iban_problem(self.iban)


def _account(row: BankAccount) -> Account:
    return Account(row.contractor_bin, row.iban, row.bic, row.bank_name, row.set_by, row.set_at)


def accounts(session: Session) -> dict[str, Account]:
    """Every contractor's current account, by BIN."""
    out: dict[str, Account] = {}
    for row in session.scalars(select(BankAccount).order_by(BankAccount.id)):
        out[row.contractor_bin] = _account(row)  # the newest row wins
    return out


def account_of(session: Session, contractor_bin: str) -> Account | None:
    row = session.scalars(
        select(BankAccount)
        .where(BankAccount.contractor_bin == contractor_bin)
        .order_by(BankAccount.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _account(row)


def set_account(
    session: Session,
    contractor_bin: str,
    *,
    iban: str,
    bic: str = "",
    bank_name: str = "",
    actor: Actor,
    now: datetime | None = None,
) -> Account:
    """Record ``contractor_bin``'s bank account, set by an operator; audited.

    Nothing is stored when the BIN, IBAN or BIC is wrong (:class:`BankError` says which).
    When ``bic`` is empty the bank's BIC is taken from the IBAN's bank code if known.
    """
    if actor.account.role is not Role.OPERATOR:
        raise PermissionDenied(f"{actor.name} is a {actor.account.role.value}: only operators")
    if problem := bin_problem(contractor_bin):
        raise BankError(f"BIN {contractor_bin!r}: {problem}")
    if problem := iban_problem(iban):
        raise BankError(problem)
    if problem := bic_problem(bic):
        raise BankError(problem)
    name = " ".join(bank_name.split())
    if len(name) > 200:
        raise BankError("bank name: at most 200 characters")
    parsed = schwifty.IBAN(_compact(iban))
    code = _compact(bic)
    if not code and parsed.bic is not None:
        code = str(parsed.bic)
    if not name and parsed.bank_name:
        name = str(parsed.bank_name)
    now = now or datetime.now(UTC)
    row = BankAccount(
        contractor_bin=contractor_bin,
        iban=parsed.compact,
        bic=code,
        bank_name=name,
        set_by=actor.name,
        set_at=now,
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor.name,
        action="contractor.bank_account_set",
        subject=f"contractor {contractor_bin}",
        data={"contractor_bin": contractor_bin, "iban": row.iban, "bic": code, "bank_name": name}
        | actor.audit_data(),
        now=now,
    )
    return _account(row)
