"""Accounts for tests: the real code paths with a cheap scrypt cost (hashing is not the
subject of most tests; ``tests/server/people/test_passwords.py`` runs the production cost)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from server.people.accounts import Account, Role, create_user, find_user
from server.people.passwords import ScryptCost
from server.people.permissions import Actor, Permission, grant

CHEAP = ScryptCost(log2_n=10, r=8, p=1)
PASSWORD = "correct horse battery"
#: Two valid BINs (check digit included) for two contractors.
BIN_A = "120440012349"
BIN_B = "990140000384"


def add_user(
    sessions: sessionmaker[Session],
    username: str,
    role: Role,
    contractor_bin: str | None = None,
    password: str = PASSWORD,
) -> Account:
    with sessions.begin() as session:
        return create_user(
            session, username, password, role, contractor_bin=contractor_bin, cost=CHEAP
        )


def operator(
    sessions: sessionmaker[Session],
    username: str,
    *permissions: Permission,
    credential: str = "test",
) -> Actor:
    """An operator holding ``permissions`` (made if missing), as the actor of library calls."""
    with sessions.begin() as session:
        user = find_user(session, username)
        account = (
            Account.of(user)
            if user is not None
            else create_user(session, username, PASSWORD, Role.OPERATOR, cost=CHEAP)
        )
        for permission in permissions:
            grant(session, username, permission, by="test")
    return Actor(account, credential)


@dataclass(frozen=True)
class Team:
    """Three operators for the payment cycle: one computes, one approves, one pays."""

    computer: Actor
    approver: Actor
    payer: Actor


def payment_team(
    sessions: sessionmaker[Session],
    computer: str = "ops",
    approver: str = "head.of.payments",
    payer: str = "treasury",
) -> Team:
    return Team(
        operator(sessions, computer, Permission.COMPUTE),
        operator(sessions, approver, Permission.APPROVE),
        operator(sessions, payer, Permission.PAY),
    )
